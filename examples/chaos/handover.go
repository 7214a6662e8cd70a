package main

import (
	"fmt"
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
	e.check("handover", "sessions resumed", strings.Count(log, "sessions of the previous worker") >= n,
		"%d requests answered from a dead worker's kept reply; %d answered err retry", strings.Count(log, "answered with its kept reply"),
		strings.Count(log, "answered err retry"))
	return nil
}
