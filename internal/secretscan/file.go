package secretscan

import (
	"os"
	"sync"
	"time"
)

// reloadEvery bounds how often a batch naming an unknown key makes File look at its file again: the
// endpoint is open to the world, and a stream of made-up identifiers must cost no more than a stat
// now and then.
const reloadEvery = 10 * time.Second

// File is a keys file that follows GitHub's key rotations: when a batch names a key identifier the
// keys do not hold and the file changed since it was read (the operator saved GitHub's new document),
// it is read again, at most once per reloadEvery. A file that no longer parses leaves the keys as they
// were: a half-written file must not lock GitHub out.
type File struct {
	path string
	now  func() time.Time

	mu      sync.Mutex
	keys    *Keys
	mod     time.Time
	size    int64
	checked time.Time
}

// OpenFile reads the keys file at path; see LoadKeys for what it refuses.
func OpenFile(path string) (*File, error) {
	f := &File{path: path, now: time.Now}
	st, err := os.Stat(path)
	if err == nil {
		f.mod, f.size = st.ModTime(), st.Size()
	}
	if f.keys, err = LoadKeys(path); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *File) current() *Keys {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.keys
}

// Verify is Keys.Verify on the file's keys, read again first when keyID is unknown and the file
// changed.
func (f *File) Verify(keyID, signature string, body []byte) error {
	k := f.current()
	if _, known := k.byID[keyID]; known || keyID == "" || len(keyID) > 256 || !f.reload() {
		return k.Verify(keyID, signature, body)
	}
	return f.current().Verify(keyID, signature, body)
}

// reload reads the file again when it changed since it was read, and reports whether the keys are new.
func (f *File) reload() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if now.Sub(f.checked) < reloadEvery {
		return false
	}
	f.checked = now
	st, err := os.Stat(f.path)
	if err != nil || st.ModTime().Equal(f.mod) && st.Size() == f.size {
		return false
	}
	k, err := LoadKeys(f.path)
	if err != nil {
		return false
	}
	f.keys, f.mod, f.size = k, st.ModTime(), st.Size()
	return true
}
