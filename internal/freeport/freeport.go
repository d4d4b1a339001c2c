// Package freeport finds loopback ports for a process to listen on soon
// after: the child processes and embedded servers of tests and benchmarks
// (a broker restarted on its address, dev's listeners, Postgres).
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
)

// Get returns a loopback port that is free now. It picks below Linux's
// ephemeral range (32768-60999): a port the kernel handed out for :0 and
// released is soon taken again as the local port of some outgoing
// connection (every Kafka and Postgres client of a test run makes them),
// and the listener that was promised it then fails with "address in use".
// It never returns the same port twice in one process.
func Get() (int, error) {
	given.Lock()
	defer given.Unlock()
	for range 1000 {
		p := 20000 + rand.IntN(12000)
		if given.ports[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		given.ports[p] = true
		return p, nil
	}
	return 0, errors.New("freeport: no free port between 20000 and 32000")
}

// given are the ports Get returned.
var given = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}
