package ingest

import (
	"encoding/hex"
	"math/rand/v2"
	"time"
)

// newID returns a UUIDv7 (RFC 9562) for a record received at now: 48 bits
// of Unix milliseconds, then 12 bits of sub-millisecond time (method 3 of
// the RFC), so ids sort by receive time to about 250 ns, then 62 random
// bits. The random bits come from the runtime's ChaCha8 generator (seeded
// from the OS, per thread, lock-free): ids need uniqueness, not secrecy, and
// crypto/rand cost a system call per request here.
func newID(now time.Time) string {
	ns := now.UnixNano()
	ms := uint64(ns / 1e6)
	sub := uint64(ns%1e6) * 4096 / 1e6
	var u [16]byte
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = 0x70 | byte(sub>>8)
	u[7] = byte(sub)
	r := rand.Uint64()
	for i := 8; i < 16; i++ {
		u[i] = byte(r >> (8 * (15 - i)))
	}
	u[8] = u[8]&0x3f | 0x80 // variant 10
	var out [36]byte
	hex.Encode(out[0:8], u[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], u[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], u[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], u[8:10])
	out[23] = '-'
	hex.Encode(out[24:], u[10:])
	return string(out[:])
}
