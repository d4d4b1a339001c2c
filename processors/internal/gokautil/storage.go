package gokautil

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
)

// A table partition keeps at most writeBackEntries changed rows, or
// writeBackBytes of them, in memory before writing them to LevelDB in one
// batch (a larger batch stalls its partition longer).
const (
	writeBackEntries = 1024
	writeBackBytes   = 1 << 20
)

// WriteBackBuilder returns LevelDB storage (one database per table
// partition under dir) behind a small write-back buffer: Set and Delete
// land in memory and reach LevelDB in batches of writeBackEntries (one
// journal write each instead of one per row), and the table offset goka
// stores after every changelog write is kept in memory and written with
// each batch. Reads see the buffer first, so the table reads exactly what
// was last written. LevelDB's per-row journal write and the offset write
// were a quarter of the processors' CPU.
//
// What a crash loses is only local: StateDir is wiped at start and goka
// rebuilds the table from the changelog. The stored offset is never ahead
// of the stored rows (rows are written first), so a partition reopened
// after a rebalance at worst re-reads some changelog records, which set
// rows to the values they already have.
func WriteBackBuilder(dir string) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		fp := filepath.Join(dir, fmt.Sprintf("%s.%d", topic, partition))
		// Start every partition empty: goka recovers it from the changelog.
		// A partition that comes back to this instance within one run (a
		// rebalance) could otherwise keep rows whose changelog writes never
		// landed, and their watermarks would skip redelivered inputs.
		if err := os.RemoveAll(fp); err != nil {
			return nil, fmt.Errorf("wiping leveldb %s: %w", fp, err)
		}
		db, err := leveldb.OpenFile(fp, nil)
		if err != nil {
			return nil, fmt.Errorf("opening leveldb %s: %w", fp, err)
		}
		inner, err := storage.New(db)
		if err != nil {
			db.Close()
			return nil, err
		}
		return &writeBack{Storage: inner, db: db, dirty: map[string][]byte{}}, nil
	}
}

type writeBack struct {
	storage.Storage // offsets, Open, MarkRecovered and iterators
	db              *leveldb.DB

	mu sync.Mutex // guards the fields below; SetOffset runs on producer goroutines
	// dirty holds rows not yet in db; a nil value is a deletion.
	dirty      map[string][]byte
	dirtyBytes int
	offset     int64 // the latest offset set, written with the next batch
	hasOffset  bool
	stored     int64 // the offset last written to the inner storage
}

func (w *writeBack) Has(key string) (bool, error) {
	v, err := w.Get(key)
	return v != nil, err
}

func (w *writeBack) Get(key string) ([]byte, error) {
	w.mu.Lock()
	v, ok := w.dirty[key]
	w.mu.Unlock()
	if ok {
		return v, nil
	}
	return w.Storage.Get(key)
}

func (w *writeBack) Set(key string, value []byte) error {
	if value == nil {
		value = []byte{} // nil marks a deletion in dirty
	}
	return w.put(key, value)
}

func (w *writeBack) Delete(key string) error { return w.put(key, nil) }

func (w *writeBack) put(key string, value []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dirty[key] = value
	w.dirtyBytes += len(key) + len(value)
	if len(w.dirty) >= writeBackEntries || w.dirtyBytes >= writeBackBytes {
		return w.flushLocked()
	}
	return nil
}

func (w *writeBack) SetOffset(offset int64) error {
	w.mu.Lock()
	w.offset, w.hasOffset = offset, true
	w.mu.Unlock()
	return nil
}

func (w *writeBack) GetOffset(def int64) (int64, error) {
	w.mu.Lock()
	off, ok := w.offset, w.hasOffset
	w.mu.Unlock()
	if ok {
		return off, nil
	}
	return w.Storage.GetOffset(def)
}

// flushLocked writes the buffered rows in one batch, then the offset.
func (w *writeBack) flushLocked() error {
	if len(w.dirty) > 0 {
		var b leveldb.Batch
		for k, v := range w.dirty {
			if v == nil {
				b.Delete([]byte(k))
			} else {
				b.Put([]byte(k), v)
			}
		}
		if err := w.db.Write(&b, nil); err != nil {
			return fmt.Errorf("writing %d rows to leveldb: %w", len(w.dirty), err)
		}
		clear(w.dirty)
		w.dirtyBytes = 0
	}
	if w.hasOffset && w.offset != w.stored {
		if err := w.Storage.SetOffset(w.offset); err != nil {
			return err
		}
		w.stored = w.offset
	}
	return nil
}

func (w *writeBack) flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

// MarkRecovered writes what recovery buffered, then lets the inner storage
// persist its offset from now on.
func (w *writeBack) MarkRecovered() error {
	if err := w.flush(); err != nil {
		return err
	}
	return w.Storage.MarkRecovered()
}

// Iterators read LevelDB: flush first so they see every row.
func (w *writeBack) Iterator() (storage.Iterator, error) {
	if err := w.flush(); err != nil {
		return nil, err
	}
	return w.Storage.Iterator()
}

func (w *writeBack) IteratorWithRange(start, limit []byte) (storage.Iterator, error) {
	if err := w.flush(); err != nil {
		return nil, err
	}
	return w.Storage.IteratorWithRange(start, limit)
}

func (w *writeBack) Close() error {
	err := w.flush()
	if cerr := w.Storage.Close(); err == nil {
		err = cerr
	}
	return err
}
