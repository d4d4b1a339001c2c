// Package bench holds no code: its subpackages are the benchmark harnesses
// that `streamtools bench` runs (cmd/streamtools/bench_*.go), kept out of
// the components' folders so that a reader of ingest/, processors/, sinks/
// or widgetd/ meets the component first.
//
//	bench/load     the ingest edge against a bare fasthttp parse-and-202 server, and
//	               the closed-loop HTTP load generator `bench e2e` also uses
//	bench/process  the processors on a backlog against a bare franz-go consumer;
//	               produce -> stats row latency
//	bench/sink     the Postgres sink against a plain COPY; lag at an input rate
//	bench/fanout   widgetd's websocket fan-out against a plain broadcast
//
// Each measures StreamTools and its baseline in the same run and prints
// both: a figure is a ratio against a baseline, never a timed assertion in
// a test. bench/fanout's TestRunSmall runs its machinery at 200 clients.
package bench
