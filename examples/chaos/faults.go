package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hothost/hothost/internal/loadgen"
)

// faults breaks the host's environment: its snapshot directory, its tmpfs,
// its segment and its snapshots.
func (e *env) faults() error {
	if err := e.snapshotDirFault(); err != nil {
		return err
	}
	if err := e.tmpfsTooSmall(); err != nil {
		return err
	}
	return e.segmentLost()
}

// snapshotDirFault makes the snapshot directory unusable under load. The
// chaos run may be root, for whom a mode bit is no obstacle, so the
// directory is replaced by a plain file: every write into it fails.
func (e *env) snapshotDirFault() error {
	const sc = "snapshot dir"
	cfg, p, a, err := e.serve("snapdir", false)
	if err != nil {
		return err
	}
	l, err := e.warmLoad(e.loadCfg(p, a), 200)
	if err != nil {
		return err
	}
	defer l.Stop()
	dir := filepath.Join(cfg.Dir, "data", "snapshots")
	if err := os.Rename(dir, dir+".away"); err != nil {
		return err
	}
	if err := os.WriteFile(dir, []byte("not a directory\n"), 0o400); err != nil {
		return err
	}
	snapErr := p.Admin(e.ctx, "POST", "/v1/snapshot", nil)
	before := l.Acked()
	if err := waitAcks(e.ctx, l, before+2000, 30*time.Second); err != nil {
		return err
	}
	st, _ := status(e.ctx, p)
	e.check(sc, "snapshot refused with a clear error", snapErr != nil && st.Snapshot.Error != "",
		"POST /v1/snapshot -> 409, status .snapshot.error: %q", strings.ReplaceAll(st.Snapshot.Error, cfg.Dir, "<dir>"))
	e.check(sc, "serving continues", l.Failed() == 0, "%d more replies after the refusal, %d failed", l.Acked()-before, l.Failed())
	os.Remove(dir)
	if err := os.Rename(dir+".away", dir); err != nil {
		return err
	}
	again := p.Admin(e.ctx, "POST", "/v1/snapshot", nil)
	st, _ = status(e.ctx, p)
	e.check(sc, "snapshots resume once it is fixed", again == nil && st.Snapshot.Error == "", "POST /v1/snapshot: %v", errOr(again))
	e.verify(sc, l, p.Addr)
	return nil
}

func errOr(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// tmpfsTooSmall starts a host whose pool cannot fit in /dev/shm: no tmpfs
// is mounted, the capacity is simply far larger than the space there.
func (e *env) tmpfsTooSmall() error {
	const sc = "tmpfs too small"
	cfg, err := e.fresh("tmpfs", false)
	if err != nil {
		return err
	}
	cfg.Capacity = 2_000_000_000
	t0 := time.Now()
	p, err := e.start(cfg)
	if err == nil {
		p.Kill()
		e.check(sc, "refused at start", false, "a host with %d players started", cfg.Capacity)
		return nil
	}
	msg := err.Error()
	line := msg
	if m := errRE.FindStringSubmatch(msg); m != nil {
		line = m[1]
	}
	left, _ := filepath.Glob(filepath.Join(cfg.ShmDir, "*"+cfg.StateName+"*"))
	clear := strings.Contains(strings.ToLower(msg), "no space") || strings.Contains(msg, "ENOSPC")
	e.check(sc, "clear error at start", clear, "exit after %v: %s", time.Since(t0).Round(time.Millisecond), clip(line, 160))
	e.check(sc, "no segment left behind", len(left) == 0, "files in %s named for the state: %d %v", cfg.ShmDir, len(left), left)
	return nil
}

// segmentLost kills the host under load, deletes its segment (what a
// reboot does) and restarts it: the newest snapshot is restored, and every
// update acknowledged before that snapshot was taken is there. Then the
// newest snapshot is corrupted and the segment deleted again: the next
// older snapshot is used.
func (e *env) segmentLost() error {
	const sc = "segment lost"
	every := 300 * time.Millisecond
	cfg, p, a, err := e.serve("restore", false, "-snapshot-every", every.String())
	if err != nil {
		return err
	}
	lc := e.loadCfg(p, a)
	lc.Mix = []loadgen.Weighted{{Cmd: "work", Weight: 1}} // coins only grow: "at least" is a check
	l, err := e.warmLoad(lc, 500)
	if err != nil {
		return err
	}
	// The ledger at t1, then a periodic snapshot that began after t1. The
	// status page says when a snapshot was in place, not when it began
	// copying: the first one in place after t1 may have begun before it
	// (and missed a player acknowledged meanwhile). Snapshots run one at a
	// time, so the next one began after t1.
	t1 := time.Now()
	l1 := l.Ledger()
	inPlace := t1
	for range 2 {
		err := e.poll(10*every, func() bool {
			st, err := status(e.ctx, p)
			if err != nil || !st.Snapshot.Last.After(inPlace) {
				return false
			}
			inPlace = st.Snapshot.Last
			return true
		})
		if err != nil {
			l.Stop()
			return fmt.Errorf("no periodic snapshot within %v (every %v)", 10*every, every)
		}
	}
	if err := waitAcks(e.ctx, l, l.Acked()+300, 30*time.Second); err != nil {
		l.Stop()
		return err
	}
	p.Kill()
	res := l.Stop()
	seg := filepath.Join(cfg.ShmDir, cfg.StateName)
	if err := os.Remove(seg); err != nil {
		return fmt.Errorf("delete the segment: %w", err)
	}
	if p, err = e.restart(cfg, p); err != nil {
		return err
	}
	st, _ := status(e.ctx, p)
	tickets := p.Tickets() // the key lives in the data directory, which the segment's loss spares
	restored := map[uint64]int64{}
	below, lostCoins, players := 0, int64(0), 0
	var first string
	for id, want := range l1 {
		got, err := tickets.Balance(e.ctx, p.Addr, id, 10*time.Second)
		if err != nil {
			return err
		}
		restored[id] = got
		players++
		if got < want {
			below++
			if first == "" {
				first = fmt.Sprintf("; player %d has %d coins, %d were acknowledged before the snapshot", id, got, want)
			}
		}
		if fin := res.Accounts[id]; fin != nil && fin.Coins > got {
			lostCoins += fin.Coins - got
		}
	}
	e.check(sc, "restored from the newest snapshot", st.State.Opened == "restored", "%s: %s", st.State.Opened, restoreFigures(st.State.Report))
	e.check(sc, "loss bounded by the snapshot", below == 0 && players > 0,
		"%d players: all hold every update acknowledged before the last snapshot; lost since: %d coins (~%d work updates, snapshots every %v)%s",
		players, lostCoins, lostCoins/10, every, first)

	// A corrupt newest snapshot: skipped, the older one used.
	if err := p.Stop(); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	snaps, _ := filepath.Glob(filepath.Join(cfg.Dir, "data", "snapshots", cfg.StateName+"*"))
	sort.Slice(snaps, func(i, j int) bool { return modTime(snaps[i]).Before(modTime(snaps[j])) })
	if len(snaps) < 2 {
		return fmt.Errorf("want at least 2 snapshots, have %d", len(snaps))
	}
	newest := snaps[len(snaps)-1]
	b, err := os.ReadFile(newest)
	if err != nil {
		return err
	}
	for i := len(b) / 3; i < len(b)/3+16 && i < len(b); i++ {
		b[i] ^= 0xa5
	}
	if err := os.WriteFile(newest, b, 0o600); err != nil {
		return err
	}
	if err := os.Remove(seg); err != nil {
		return fmt.Errorf("delete the segment: %w", err)
	}
	if p, err = e.restart(cfg, p); err != nil {
		return err
	}
	st, _ = status(e.ctx, p)
	same := 0
	for id, want := range restored {
		if got, err := tickets.Balance(e.ctx, p.Addr, id, 10*time.Second); err == nil && got == want {
			same++
		}
	}
	skipped := strings.Contains(st.State.Report, "1 snapshots skipped") && !strings.Contains(st.State.Report, filepath.Base(newest))
	e.check("corrupt snapshot", "skipped, the older one used", st.State.Opened == "restored" && skipped,
		"corrupted %s; %s: %s", filepath.Base(newest), st.State.Opened, restoreFigures(st.State.Report))
	e.check("corrupt snapshot", "older snapshot holds the same players", same == len(restored),
		"%d of %d players as before the corruption (no update in between)", same, len(restored))
	return nil
}

var (
	errRE      = regexp.MustCompile(`err="((?:[^"\\]|\\.)*)"`)
	fromRE     = regexp.MustCompile(`from snapshot (\S+) \(([^)]*) old\)`)
	skippedRE  = regexp.MustCompile(`(\d+) snapshots skipped`)
	playersRE  = regexp.MustCompile(`(\d+) players \(capacity`)
	durationRE = regexp.MustCompile(`capacity \d+\) in (\S+?);`)
)

// restoreFigures picks the figures out of a restore report.
func restoreFigures(report string) string {
	var parts []string
	if m := playersRE.FindStringSubmatch(report); m != nil {
		parts = append(parts, m[1]+" players")
	}
	if m := durationRE.FindStringSubmatch(report); m != nil {
		parts = append(parts, "in "+m[1])
	}
	if m := fromRE.FindStringSubmatch(report); m != nil {
		parts = append(parts, fmt.Sprintf("from %s (%s old)", filepath.Base(m[1]), m[2]))
	}
	if m := skippedRE.FindStringSubmatch(report); m != nil {
		parts = append(parts, m[1]+" skipped")
	}
	if len(parts) == 0 {
		return clip(report, 160)
	}
	return strings.Join(parts, ", ")
}

func modTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}
