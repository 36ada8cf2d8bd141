package storage_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edged-proxy/edged/storage"
)

// BenchmarkGet1MiB is a disk hit: Get + Verify + reading the whole 1 MiB
// body from File (the sendfile path), or through the verifying reader.
func BenchmarkGet1MiB(b *testing.B) {
	s := openStore(b, fast(""))
	const n = 1 << 20
	put(b, s, "k", body(n, 1))
	buf := make([]byte, 32<<10)
	b.Run("VerifyThenFile", func(b *testing.B) {
		b.SetBytes(n)
		for b.Loop() {
			o, err := s.Get("k")
			if err != nil {
				b.Fatal(err)
			}
			if err := o.Verify(); err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, io.NewSectionReader(o.File(), 0, o.Size()), buf); err != nil {
				b.Fatal(err)
			}
			o.Close()
		}
	})
	b.Run("VerifyingReader", func(b *testing.B) {
		b.SetBytes(n)
		for b.Loop() {
			o, err := s.Get("k")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, o.NewReader(0, -1), buf); err != nil {
				b.Fatal(err)
			}
			o.Close()
		}
	})
}

// BenchmarkCommit64KiB is Create + Write 64 KiB + Commit of a new key,
// packed into a segment (the default for bodies up to 256 KiB) or in a
// blob file of its own.
func BenchmarkCommit64KiB(b *testing.B) {
	data := body(64<<10, 1)
	type bench struct {
		name     string
		fsync    storage.FsyncPolicy
		parallel bool
		pack     int64
	}
	var benches []bench
	for _, mode := range []struct {
		name string
		pack int64
	}{{"packed", 0}, {"blob", -1}} {
		benches = append(benches,
			bench{"FsyncAlways/" + mode.name, storage.FsyncAlways, false, mode.pack},
			bench{"FsyncNever/" + mode.name, storage.FsyncNever, false, mode.pack},
			bench{"FsyncAlwaysParallel/" + mode.name, storage.FsyncAlways, true, mode.pack},
			bench{"FsyncNeverParallel/" + mode.name, storage.FsyncNever, true, mode.pack})
	}
	for _, bc := range benches {
		b.Run(bc.name, func(b *testing.B) {
			s := openStore(b, storage.Options{Fsync: bc.fsync, PackBelow: bc.pack})
			var seq atomic.Int64
			commit := func() {
				w, err := s.Create(fmt.Sprint("https://example.com/obj/", seq.Add(1)))
				if err != nil {
					b.Fatal(err)
				}
				w.Write(data)
				if err := w.Commit(storage.Meta{Size: int64(len(data))}); err != nil {
					b.Fatal(err)
				}
				w.Close()
			}
			b.SetBytes(int64(len(data)))
			if bc.parallel {
				b.SetParallelism(8)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						commit()
					}
				})
				return
			}
			for b.Loop() {
				commit()
			}
		})
	}
}

// BenchmarkIndexMemory100k reports the Go heap held per indexed object by a
// store with 100k objects (keys ~45 bytes), and the index file size per
// object.
func BenchmarkIndexMemory100k(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	storage.BulkLoad(b, dir, n, func(i int) string { return fmt.Sprintf("https://www.example.com/assets/img/%08d.jpg", i) })
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s, err := storage.Open(storage.Options{Dir: dir, Fsync: storage.FsyncNever})
		if err != nil {
			b.Fatal(err)
		}
		s.WaitRecovery()
		runtime.GC()
		runtime.ReadMemStats(&after)
		if got := s.Stats().Objects; got != n {
			b.Fatalf("objects = %d", got)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-bytes/object")
		runtime.KeepAlive(s)
		s.Close()
	}
	if fi, err := os.Stat(filepath.Join(dir, "index.db")); err == nil {
		b.ReportMetric(float64(fi.Size())/n, "index-bytes/object")
	}
}

// BenchmarkGet1KiB shows the fixed per-hit cost of the one-file-per-object
// layout (index lookup, open, fstat, close) on a small object.
func BenchmarkGet1KiB(b *testing.B) {
	s := openStore(b, fast(""))
	put(b, s, "k", body(1<<10, 1))
	buf := make([]byte, 1<<10)
	b.SetBytes(1 << 10)
	for b.Loop() {
		o, err := s.Get("k")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(o.NewReader(0, -1), buf); err != nil {
			b.Fatal(err)
		}
		o.Close()
	}
}

// BenchmarkOpenPacked is a restart with n small packed objects on disk
// (4 KiB bodies, 300-byte headers, 8 MiB segments), after a clean close
// and after a crash (no free page list written: bbolt scans the index at
// open). open-ms is how long Open takes (the node serves once it returns:
// it waits up to LoadWait, 500 ms, for the in-memory index, then loads
// the rest in the background); get-ms the first Get after it; loaded-ms
// when the index is loaded; recovery-ms when recovery is done (all from
// the start of Open); heap-B/object the heap then. The store is built
// once, outside the timer. Run with -benchtime=1x:
//
//	go test -run XXX -bench OpenPacked -benchtime 1x ./storage
func BenchmarkOpenPacked(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		dir := b.TempDir()
		key := func(i int) string { return fmt.Sprintf("https://www.example.com/assets/img/%08d.jpg", i) }
		storage.BulkLoadPacked(b, dir, n, 4096, 8<<20, 300, key)
		for _, restart := range []string{"crash", "clean"} {
			b.Run(fmt.Sprintf("%d/%s", n, restart), func(b *testing.B) {
				var ms runtime.MemStats
				for b.Loop() {
					if restart == "crash" {
						b.StopTimer()
						storage.ForgetFreelist(b, dir)
						b.StartTimer()
					}
					start := time.Now()
					s, err := storage.Open(fast(dir))
					if err != nil {
						b.Fatal(err)
					}
					opened := time.Since(start)
					o, err := s.Get(key(n / 2))
					if err != nil {
						b.Fatal(err)
					}
					o.Close()
					got := time.Since(start) - opened
					s.WaitLoaded()
					loaded := time.Since(start)
					s.WaitRecovery()
					recovered := time.Since(start)
					st := s.Stats()
					if st.Objects != int64(n) || st.RecoveryDroppedEntries != 0 {
						b.Fatalf("stats = %+v", st)
					}
					runtime.GC() // the bulk load's garbage out: what is left is the store's
					runtime.ReadMemStats(&ms)
					b.ReportMetric(float64(opened.Milliseconds()), "open-ms")
					b.ReportMetric(float64(got.Microseconds())/1000, "get-ms")
					b.ReportMetric(float64(loaded.Milliseconds()), "loaded-ms")
					b.ReportMetric(float64(recovered.Milliseconds()), "recovery-ms")
					b.ReportMetric(float64(ms.HeapInuse)/float64(n), "heap-B/object")
					b.StopTimer()
					s.Close() // clean: writes the free page list
					b.StartTimer()
				}
			})
		}
	}
}
