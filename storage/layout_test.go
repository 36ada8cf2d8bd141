package storage_test

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/edged-proxy/edged/storage"
)

// blobDirs counts the leaf directories under dir/blobs that hold blobs.
func blobDirs(t *testing.T, dir string) int {
	t.Helper()
	dirs := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(dir, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			dirs[filepath.Dir(p)] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(dirs)
}

// A new store groups consecutive blobs in one directory, so a cold node
// makes one directory per 256 fills instead of one per fill (the spread
// layout's mkdir per object showed as 9% of CPU under a Zipf fill load).
func TestNewStoreGroupsBlobs(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, blobsOnly(dir))
	for i := range 300 {
		put(t, s, fmt.Sprintf("k%d", i), body(100, uint64(i)))
	}
	if n := blobDirs(t, dir); n > 2 {
		t.Errorf("300 blobs in %d directories, want at most 2", n)
	}
}

// An index written before layouts were recorded keeps the spread layout:
// its blobs are found where they were written, across restarts.
func TestOldIndexKeepsSpreadLayout(t *testing.T) {
	dir := t.TempDir()
	s, err := storage.Open(blobsOnly(dir))
	if err != nil {
		t.Fatal(err)
	}
	s.WaitRecovery()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Make it an index from before the layout key.
	db, err := bolt.Open(filepath.Join(dir, "index.db"), 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Delete([]byte("layout")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err = storage.Open(blobsOnly(dir))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for i := range 40 {
		k := fmt.Sprintf("k%d", i)
		want[k] = body(100, uint64(i))
		put(t, s, k, want[k])
	}
	s.WaitRecovery()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := blobDirs(t, dir); n != 40 {
		t.Errorf("40 blobs in %d directories, want 40 (spread layout)", n)
	}
	s = openStore(t, blobsOnly(dir)) // checks consistency, with the layout, on cleanup
	s.WaitRecovery()
	for k, b := range want {
		mustGet(t, s, k, b)
	}
	if st := s.Stats(); st.RecoveryDroppedEntries != 0 || st.RecoveryDeletedOrphans != 0 {
		t.Errorf("recovery dropped %d entries and %d orphans of the spread layout", st.RecoveryDroppedEntries, st.RecoveryDeletedOrphans)
	}
}
