package main

import (
	"os"
	"path/filepath"

	"fmt"
	"github.com/hothost/hothost/host"
	"math/rand/v2"
	"strings"
	"syscall"
	"time"

	"github.com/hothost/hothost/internal/loadgen"
)

// handoverStorm kills the worker of a supervised host n times at random
// instants under load. The supervisor keeps every client connection and
// hands them to the next worker, which resumes each session from the table
// in shared memory: the load runs with no reconnects allowed, so a single
// cut connection fails the check, and the ledger proves that no request
// was lost or run twice.
func (e *env) handoverStorm(n int) error {
	// A worker that dies within -stable-after of its start counts towards
	// the supervisor's crash-loop backoff (default 5s, up to 10s of wait).
	// The storm kills each worker a few hundred milliseconds after it
	// serves: that is not the crash loop the backoff is for.
	cfg, err := e.fresh("handover", false, "-stable-after", "100ms")
	if err != nil {
		return err
	}
	cfg.Supervised = true
	seam := filepath.Join(cfg.Dir, "reply-kill")
	cfg.Env = append(cfg.Env, host.ReplyKillEnv+"="+seam)
	p, err := e.start(cfg)
	if err != nil {
		return err
	}
	a := newAddr(p.Addr)
	lc := e.loadCfg(p, a)
	lc.Reconnect = 0 // a cut connection ends its worker: counted, never hidden
	l, err := loadgen.Start(e.ctx, lc)
	if err != nil {
		return err
	}
	defer l.Stop()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	var serving, firstReply []time.Duration
	for i := range n {
		if err := waitAcks(e.ctx, l, l.Acked()+1+rng.Int64N(600), 30*time.Second); err != nil {
			return fmt.Errorf("kill %d: %w", i+1, stalled(l, err))
		}
		pid, err := p.WorkerPID(e.ctx)
		if err != nil {
			return fmt.Errorf("kill %d: worker pid: %w", i+1, err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			return fmt.Errorf("kill %d: %w", i+1, err)
		}
		t0 := time.Now()
		var next int
		if err := e.poll(30*time.Second, func() bool {
			next, err = p.WorkerPID(e.ctx)
			return err == nil && next != pid
		}); err != nil {
			return fmt.Errorf("kill %d: no new worker: %w (%s)", i+1, stalled(l, err), e.keepLog("handover", p))
		}
		serving = append(serving, time.Since(t0))
		acked := l.Acked()
		if err := waitAcks(e.ctx, l, acked+1, 30*time.Second); err != nil {
			return fmt.Errorf("after kill %d: %w (%s)", i+1, stalled(l, err), e.keepLog("handover", p))
		}
		firstReply = append(firstReply, time.Since(t0))
	}
	// Then kills at the one instant the bytes cannot settle: each worker
	// kills itself after its Nth commit, before writing that reply
	// (host.ReplyKillEnv). The next one must answer with the kept reply.
	var seamed []time.Duration
	for i := range n / 10 {
		pid, err := p.WorkerPID(e.ctx)
		if err != nil {
			return fmt.Errorf("seam kill %d: worker pid: %w", i+1, err)
		}
		if err := os.WriteFile(seam, fmt.Appendf(nil, "%d\n", 1+rng.IntN(300)), 0o600); err != nil {
			return err
		}
		t0 := time.Now()
		if err := e.poll(30*time.Second, func() bool {
			next, err := p.WorkerPID(e.ctx)
			return err == nil && next != pid
		}); err != nil {
			return fmt.Errorf("seam kill %d: no new worker: %w (%s)", i+1, stalled(l, err), e.keepLog("handover", p))
		}
		if err := waitAcks(e.ctx, l, l.Acked()+1, 30*time.Second); err != nil {
			return fmt.Errorf("after seam kill %d: %w (%s)", i+1, stalled(l, err), e.keepLog("handover", p))
		}
		seamed = append(seamed, time.Since(t0))
	}
	if err := waitAcks(e.ctx, l, l.Acked()+500, 30*time.Second); err != nil {
		return stalled(l, err)
	}
	res, ck := e.verify("handover", l, p.Addr)
	e.check("handover", fmt.Sprintf("%d kill -9 of the worker", n), len(serving) == n,
		"kill -> new worker serving %s", quantiles(serving))
	e.check("handover", "zero client disconnects", res.Transport == 0 && res.Reconnects == 0,
		"%d connections, %d requests cut, %d reconnects", e.conns, res.Transport, res.Reconnects)
	e.check("handover", "zero failed requests", res.Failed == 0, "%d replies, %d failed%s", res.Requests, res.Failed, codes(res))
	e.check("handover", "no update lost or doubled", len(res.Violations) == 0 && ck.OK(),
		"%d acknowledged updates checked against the ledger", ck.Updates)
	e.check("handover", "pause per kill", len(firstReply) == n, "kill -> first reply %s", quantiles(firstReply))
	// How often each path of the handover was taken, from the workers' logs.
	log := p.Log()
	kept := strings.Count(log, "answered with its kept reply")
	e.check("handover", "sessions resumed", strings.Count(log, "sessions of the previous worker") >= n+len(seamed),
		"%d workers started on a dead one's sessions", strings.Count(log, "sessions of the previous worker"))
	e.check("handover", "committed, unanswered: answered once from the kept reply", len(seamed) == n/10 && kept >= len(seamed),
		"%d kills between a commit and its reply; %d requests answered from a dead worker's kept reply; %d answered err retry",
		len(seamed), kept, strings.Count(log, "answered err retry"))
	return nil
}
