package host

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

type testConfig struct {
	Reward int64            `json:"reward"`
	Prices map[string]int64 `json:"prices"`
}

func TestConfigSource(t *testing.T) {
	dir := t.TempDir()
	s := newConfigSource(dir, func() testConfig { return testConfig{Reward: 1} }, func(c *testConfig) error {
		if c.Reward <= 0 {
			return errors.New("reward must be positive")
		}
		return nil
	})
	changed, _, err := s.reload()
	if err != nil || !changed || s.current().Version != 1 || s.current().Value.Reward != 1 {
		t.Fatalf("defaults: changed %v err %v cur %+v", changed, err, s.current())
	}
	if changed, _, _ := s.reload(); changed {
		t.Fatal("reload without a change swapped the config")
	}
	// Files apply in name order on top of the defaults.
	os.WriteFile(filepath.Join(dir, "a.json"), []byte(`{"reward": 5, "prices": {"x": 1}}`), 0o600)
	os.WriteFile(filepath.Join(dir, "b.json"), []byte(`{"prices": {"y": 2}}`), 0o600)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte(`ignored`), 0o600)
	if changed, _, err := s.reload(); !changed || err != nil {
		t.Fatalf("valid change: %v %v", changed, err)
	}
	cur := s.current()
	if cur.Version != 2 || cur.Value.Reward != 5 || cur.Value.Prices["x"] != 1 || cur.Value.Prices["y"] != 2 || len(cur.Files) != 2 {
		t.Fatalf("merged config %+v %+v", cur, cur.Value)
	}
	old := cur.Value
	// An invalid change is refused whole, reported once, and the old stays.
	os.WriteFile(filepath.Join(dir, "b.json"), []byte(`{"reward": -1}`), 0o600)
	_, fresh, err := s.reload()
	if !errors.Is(err, ErrConfig) || !fresh {
		t.Fatalf("invalid change: fresh %v err %v", fresh, err)
	}
	if _, fresh, err := s.reload(); err == nil || fresh {
		t.Fatalf("same invalid files again: fresh %v err %v, want the error, not fresh", fresh, err)
	}
	if s.current().Value != old || s.current().Version != 2 {
		t.Fatal("refused change replaced the config")
	}
	if s.lastError() == nil {
		t.Fatal("lastError lost the refusal")
	}
	os.WriteFile(filepath.Join(dir, "b.json"), []byte(`{"reward": 3}`), 0o600)
	if changed, _, err := s.reload(); !changed || err != nil || s.current().Version != 3 || s.lastError() != nil {
		t.Fatalf("fixed change: %v %v %v", changed, err, s.lastError())
	}
}
