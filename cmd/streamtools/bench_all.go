package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/urfave/cli/v3"
)

func benchAllCommand() *cli.Command {
	return &cli.Command{
		Name:  "all",
		Usage: "run every benchmark, one after another, and write the report (docs/BENCHMARKS.md)",
		Description: "Runs `streamtools bench ingest`, `process`, `e2e`, `sink` and `widgetd` as child processes of this\n" +
			"binary, one at a time (the machine's cores are the bottleneck), and writes --out: the machine, its\n" +
			"load before and after each run, each command line and what it printed (figures against their\n" +
			"baselines measured in the same run), and how to run them again. A benchmark that fails is reported\n" +
			"as failed in the file and the command exits with an error after writing it.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Value: "docs/BENCHMARKS.md", Usage: "the report to write"},
			&cli.BoolFlag{Name: "quick", Usage: "smaller runs (for a first look; the figures are noisier)"},
		},
		Action: runBenchAll,
	}
}

// benchRun is one benchmark of `bench all`.
type benchRun struct {
	name, what string
	args       []string
}

func benchRuns(quick bool) []benchRun {
	runs := []benchRun{
		{"ingest", "the edge alone: accepted postbacks/s (acks=all to an in-process kfake) vs a bare fasthttp parse-and-202 handler", []string{"bench", "ingest"}},
		{"process", "the processors on a backlog of 100,000 postbacks (1,000 influencers, then one hot influencer) vs a bare franz-go consumer; records, bytes and RSS per postback; produced -> stats row latency at 1,000/s", []string{"bench", "process"}},
		{"e2e", "the whole dev system (a child process with kfake, PostgreSQL and every component) under HTTP load: 202 -> counted in Postgres vs a bare fasthttp handler, 1,000 influencers and one; broker bytes per postback; dev's peak RSS; 202 -> widget frame", []string{"bench", "e2e"}},
		{"sink", "the sink: rows/s into Postgres vs a plain COPY of the same rows; lag at a given input rate", []string{"bench", "sink"}},
		{"widgetd", "widget fan-out: 10,000 websocket clients, delivery latency and memory per connection vs a plain fasthttp/websocket broadcast", []string{"bench", "widgetd"}},
	}
	if quick {
		runs[0].args = append(runs[0].args, "--rounds", "2")
		runs[1].args = append(runs[1].args, "--events", "20000", "--latency-duration", "3s")
		runs[2].args = append(runs[2].args, "--max", "20000", "--latency-duration", "3s")
	}
	return runs
}

func runBenchAll(ctx context.Context, cmd *cli.Command) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	var doc bytes.Buffer
	fmt.Fprintf(&doc, "# Benchmarks\n\n")
	fmt.Fprintf(&doc, "Written by `streamtools bench all` on %s. Every figure comes from a command that measures\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&doc, "StreamTools and a baseline in the same run on the same machine and prints both; nothing in the test\n")
	fmt.Fprintf(&doc, "suite asserts a timing. The goals are in each command's `--help` and in the issues that set them.\n\n")
	fmt.Fprintf(&doc, "Machine: %s, %d CPUs, %s/%s, %s; load average (1 5 15 min) at the start: %s.\n\n",
		host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), loadAverage())
	fmt.Fprintf(&doc, "Run them again: `go build -o streamtools ./cmd/streamtools && ./streamtools bench all` (about 5\n")
	fmt.Fprintf(&doc, "minutes; `--quick` for smaller runs), or one of them: `./streamtools bench <name>`. The machine should\n")
	fmt.Fprintf(&doc, "be otherwise idle: the benchmarks share its cores with their own baselines.\n\n")
	var failed []string
	for _, r := range benchRuns(cmd.Bool("quick")) {
		fmt.Fprintf(os.Stderr, "bench all: %s...\n", r.name)
		before := loadAverage()
		start := time.Now()
		c := exec.CommandContext(ctx, self, r.args...)
		var out bytes.Buffer
		c.Stdout = &out
		c.Stderr = io.Discard
		err := c.Run()
		fmt.Fprintf(&doc, "## %s\n\n%s.\n\n", r.name, r.what)
		fmt.Fprintf(&doc, "`streamtools %s`, %v, load average %s before and %s after:\n\n```\n%s```\n\n",
			strings.Join(r.args, " "), time.Since(start).Round(time.Second), before, loadAverage(), out.String())
		if err != nil {
			failed = append(failed, r.name)
			fmt.Fprintf(&doc, "**This benchmark failed: %v.**\n\n", err)
		}
	}
	if err := os.WriteFile(cmd.String("out"), doc.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing --out: %w", err)
	}
	fmt.Fprintf(os.Stderr, "bench all: wrote %s\n", cmd.String("out"))
	if len(failed) > 0 {
		return fmt.Errorf("benchmarks failed: %s (see %s)", strings.Join(failed, ", "), cmd.String("out"))
	}
	return nil
}
