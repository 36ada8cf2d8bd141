package storage_test

import (
	"testing"

	"github.com/edged-proxy/edged/storage"
)

// Prepare writes a packed body to its segment ahead of Commit: committed,
// it reads back (also after a restart); aborted or closed uncommitted, it
// is dead bytes and nothing is indexed; nothing may be written after it.
func TestPrepare(t *testing.T) {
	for _, tc := range []struct {
		name   string
		finish func(w *storage.Writer, m storage.Meta) error
		stored bool
	}{
		{"commit", func(w *storage.Writer, m storage.Meta) error { return w.Commit(m) }, true},
		{"abort", func(w *storage.Writer, _ storage.Meta) error { return w.Abort() }, false},
		{"close", func(w *storage.Writer, _ storage.Meta) error { return w.Close() }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := storage.Open(packing(dir))
			if err != nil {
				t.Fatal(err)
			}
			put(t, s, "before", body(3000, 1))
			b := body(5000, 2)
			w, err := s.Create("k")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.WriteShared(b); err != nil {
				t.Fatal(err)
			}
			if err := w.Prepare(); err != nil {
				t.Fatal(err)
			}
			if err := w.Prepare(); err != nil { // a second is a no-op
				t.Fatal(err)
			}
			if _, err := w.Write([]byte("x")); err == nil {
				t.Fatal("a write after Prepare was accepted")
			}
			if st := s.Stats(); st.SegmentBytes != 8000 || st.DeadBytes != 5000 {
				t.Errorf("after Prepare: %d segment bytes, %d dead, want 8000 and 5000 (reserved until named)", st.SegmentBytes, st.DeadBytes)
			}
			if err := tc.finish(w, storage.Meta{Key: "k", Size: int64(len(b))}); err != nil {
				t.Fatal(err)
			}
			w.Close()
			if tc.stored {
				mustGet(t, s, "k", b)
			} else {
				wantNotFound(t, s, "k")
			}
			wantDead := int64(5000)
			if tc.stored {
				wantDead = 0
			}
			if st := s.Stats(); st.DeadBytes != wantDead {
				t.Errorf("dead bytes %d, want %d", st.DeadBytes, wantDead)
			}
			s.Close()
			storage.CheckConsistency(t, dir)
			s = openStore(t, packing(dir))
			mustGet(t, s, "before", body(3000, 1))
			if tc.stored {
				mustGet(t, s, "k", b)
			} else {
				wantNotFound(t, s, "k")
			}
		})
	}
}
