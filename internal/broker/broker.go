// Package broker runs the embedded Kafka-protocol broker (franz-go's kfake)
// that `streamtools dev` and `streamtools broker` use, and that tests start
// on a random port. It is a real broker over TCP: clients cannot tell it from
// Kafka for everything StreamTools does. It is not for production volumes or
// availability; run real Kafka there.
package broker

import (
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Config configures the embedded broker.
type Config struct {
	// Addr is host:port to listen on. The zero value is "127.0.0.1:9092";
	// port 0 picks a free port.
	Addr string
	// DataDir keeps topics and committed offsets across restarts. Empty
	// keeps everything in memory only.
	DataDir string
	// Partitions is the default partition count of auto-created topics;
	// 0 means 6.
	Partitions int
}

// Broker is a running embedded broker.
type Broker struct {
	c    *kfake.Cluster
	addr string
}

// Start starts the broker and returns once it listens.
func Start(cfg Config) (*Broker, error) {
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:9092"
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("broker: parsing Addr %q: %w (want host:port)", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("broker: parsing the port of Addr %q: %w", addr, err)
	}
	parts := cfg.Partitions
	if parts <= 0 {
		parts = 6
	}
	opts := []kfake.Opt{
		kfake.Ports(port),
		// kfake listens on 127.0.0.1; honour the configured host. Port 0
		// picks a free port, reported by Addr.
		kfake.ListenFn(func(network, a string) (net.Listener, error) {
			_, p, _ := net.SplitHostPort(a)
			return net.Listen(network, net.JoinHostPort(host, p))
		}),
		kfake.DefaultNumPartitions(parts),
		kfake.BrokerConfigs(map[string]string{
			// Compact the compacted topics (customers, keys, salts, goka
			// tables) every minute so that tombstoned rows go away.
			"log.cleaner.backoff.ms": "60000",
		}),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("broker: starting kfake on %s: %w", addr, err)
	}
	return &Broker{c: c, addr: c.ListenAddrs()[0]}, nil
}

// Addr is the host:port clients connect to.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker, flushing its data directory. Safe to call twice.
func (b *Broker) Close() {
	if b.c != nil {
		b.c.Close()
		b.c = nil
	}
}
