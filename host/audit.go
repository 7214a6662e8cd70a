package host

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

// auditLog appends one JSON line per admin call: when, who, what, result.
// It is opened 0600 and synced per line: an audit record that a crash can
// drop is not one.
type auditLog struct {
	mu sync.Mutex
	f  *os.File
}

type auditEntry struct {
	Time   time.Time `json:"time"`
	Who    string    `json:"who"`
	Method string    `json:"method"`
	What   string    `json:"what"`
	Status int       `json:"status"`
	Result string    `json:"result"`
}

func openAudit(path string) (*auditLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("host: open audit log: %w", err)
	}
	return &auditLog{f: f}, nil
}

func (a *auditLog) write(e auditEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("host: audit log: %w", err)
	}
	return a.f.Sync()
}

func (a *auditLog) close() error { return a.f.Close() }
