package host

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// liveConfig is one immutable version of the game config. Handlers get one
// *liveConfig per request, so a request never sees half of a reload.
type liveConfig[C any] struct {
	Version  int       // 1, 2, ... per successful load in this process
	Hash     string    // sha256 over the files' names and contents
	Files    []string  // files applied, in order
	LoadedAt time.Time // when it became current
	Value    *C
}

// configSource loads the config directory: every *.json file, in name order,
// decoded strictly (unknown fields refused) on top of the defaults, then
// validated. An invalid set of files is refused whole and the old config
// stays current.
type configSource[C any] struct {
	dir      string
	defaults func() C
	validate func(*C) error

	cur     atomic.Pointer[liveConfig[C]]
	mu      sync.Mutex // serialises reloads
	lastErr error      // the last refused change, for status
	badHash string     // hash of the refused files, so they are reported once
}

func newConfigSource[C any](dir string, defaults func() C, validate func(*C) error) *configSource[C] {
	return &configSource[C]{dir: dir, defaults: defaults, validate: validate}
}

// ErrConfig wraps every refused config change.
var ErrConfig = errors.New("config refused")

// reload reads the directory and swaps in the result if it changed and is
// valid. changed reports a swap; fresh reports that err is a refusal not
// reported before (the same bad files are refused quietly on later polls).
func (s *configSource[C]) reload() (changed, fresh bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names, blobs, hash, err := s.read()
	if err != nil {
		fresh = s.lastErr == nil || s.lastErr.Error() != err.Error()
		s.lastErr = err
		return false, fresh, err
	}
	old := s.cur.Load()
	if old != nil && old.Hash == hash {
		s.lastErr, s.badHash = nil, ""
		return false, false, nil
	}
	if hash == s.badHash {
		return false, false, s.lastErr
	}
	v := s.defaults()
	for i, b := range blobs {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			return false, true, s.refuse(hash, fmt.Errorf("%w: %s: %v", ErrConfig, names[i], err))
		}
		if dec.More() {
			return false, true, s.refuse(hash, fmt.Errorf("%w: %s: more than one JSON value", ErrConfig, names[i]))
		}
	}
	if s.validate != nil {
		if err := s.validate(&v); err != nil {
			return false, true, s.refuse(hash, fmt.Errorf("%w: %v", ErrConfig, err))
		}
	}
	next := &liveConfig[C]{Version: 1, Hash: hash, Files: names, LoadedAt: time.Now(), Value: &v}
	if old != nil {
		next.Version = old.Version + 1
	}
	s.cur.Store(next)
	s.lastErr, s.badHash = nil, ""
	return true, false, nil
}

func (s *configSource[C]) refuse(hash string, err error) error {
	s.lastErr, s.badHash = err, hash
	return err
}

func (s *configSource[C]) read() (names []string, blobs [][]byte, hash string, err error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, "", fmt.Errorf("%w: read %s: %v", ErrConfig, s.dir, err)
	}
	h := sha256.New()
	for _, e := range entries {
		if e.IsDir() || filepath.Ext(e.Name()) != ".json" {
			continue
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		f, err := os.Open(filepath.Join(s.dir, n))
		if err != nil {
			return nil, nil, "", fmt.Errorf("%w: %v", ErrConfig, err)
		}
		b, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
		f.Close()
		if err != nil {
			return nil, nil, "", fmt.Errorf("%w: read %s: %v", ErrConfig, n, err)
		}
		if len(b) > 1<<20 {
			return nil, nil, "", fmt.Errorf("%w: %s is larger than 1 MiB", ErrConfig, n)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
		blobs = append(blobs, b)
	}
	return names, blobs, hex.EncodeToString(h.Sum(nil))[:16], nil
}

func (s *configSource[C]) current() *liveConfig[C] { return s.cur.Load() }

func (s *configSource[C]) lastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}
