package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hothost/hothost/internal/hostproc"
	hhsup "github.com/hothost/hothost/supervisor"
)

// upgradeStorm upgrades a supervised host n times under load, alternating
// two host binaries: the one built as usual and one built with -tags
// hothost_title, whose player state has a Title field more. Each upgrade
// drains the old worker, the new one migrates the segment's layout (adding
// or dropping Title) and takes every connection over. Each binary has its
// own build of the plugins (a plugin must be built for its host's game
// package); the other's are refused by the loader, and the newest loadable
// version serves. The load allows no reconnect: a cut connection fails.
func (e *env) upgradeStorm(n int) error {
	t0 := time.Now()
	title, err := hostproc.BuildTagged(filepath.Join(e.dir, "bin-title"), "hothost_title")
	if err != nil {
		return err
	}
	cfg, err := e.fresh("upgrade", false, "-stable-after", "100ms")
	if err != nil {
		return err
	}
	cfg.Supervised = true
	pd := filepath.Join(cfg.Dir, "plugins-dir")
	for _, m := range []struct{ src, name string }{{"plugins/coin/v1", "coin"}, {"plugins/shop", "shop"}, {"plugins/profile", "profile"}} {
		if err := buildAs(title, m.src, m.name, "1.0.1", pd); err != nil {
			return err
		}
	}
	fmt.Printf("   built the title host and its plugins in %v\n", time.Since(t0).Round(time.Millisecond))
	p, err := e.start(cfg)
	if err != nil {
		return err
	}
	a := newAddr(p.Addr)
	lc := e.loadCfg(p, a)
	lc.Reconnect = 0
	l, err := e.warmLoad(lc, 500)
	if err != nil {
		return err
	}
	defer l.Stop()
	statusFile := filepath.Join(cfg.Dir, "data", "supervisor.json")
	bins := []string{title.Hothost, e.bins.Hothost}
	var took []time.Duration
	titled, plain := 0, 0
	for i := range n {
		to := bins[i%2]
		t := time.Now()
		var up struct {
			Supervisor hhsup.Status `json:"supervisor"`
		}
		if err := p.Admin(e.ctx, "POST", "/v1/upgrade?binary="+to, &up); err != nil {
			return fmt.Errorf("upgrade %d: %w", i+1, stalled(l, err))
		}
		var st hhsup.Status
		if err := e.poll(time.Minute, func() bool {
			st, err = hhsup.ReadStatusFile(statusFile)
			return err == nil && st.LastUpgrade != nil && st.LastUpgrade.To == to &&
				(st.LastUpgrade.State == hhsup.UpgradeDone || st.LastUpgrade.State == hhsup.UpgradeFailed) &&
				st.State == hhsup.StateReady
		}); err != nil {
			return fmt.Errorf("upgrade %d to %s: %w (%s)", i+1, to, stalled(l, err), e.keepLog("upgrade", p))
		}
		if st.LastUpgrade.State != hhsup.UpgradeDone {
			return fmt.Errorf("upgrade %d to %s failed: %s %v", i+1, to, st.LastUpgrade.Reason, st.LastUpgrade.Stderr)
		}
		acked := l.Acked()
		if err := waitAcks(e.ctx, l, acked+int64(e.conns), 30*time.Second); err != nil {
			return fmt.Errorf("after upgrade %d: %w (%s)", i+1, stalled(l, err), e.keepLog("upgrade", p))
		}
		took = append(took, time.Since(t))
		has, err := e.hasTitle(e.ctx, p)
		if err != nil {
			return fmt.Errorf("after upgrade %d: %w", i+1, err)
		}
		switch {
		case to == title.Hothost && has:
			titled++
		case to == e.bins.Hothost && !has:
			plain++
		}
	}
	if err := waitAcks(e.ctx, l, l.Acked()+500, 30*time.Second); err != nil {
		return stalled(l, err)
	}
	res, ck := e.verify("upgrade", l, p.Addr)
	e.check("upgrade", fmt.Sprintf("%d upgrades, two binaries alternating", n), len(took) == n,
		"upgrade -> %d replies on the new worker %s", e.conns, quantiles(took))
	e.check("upgrade", "the state type follows the binary", titled+plain == n,
		"Title present after %d of %d upgrades to the title binary, absent after %d of %d back", titled, (n+1)/2, plain, n/2)
	e.check("upgrade", "zero client disconnects", res.Transport == 0 && res.Reconnects == 0,
		"%d connections, %d requests cut, %d reconnects", e.conns, res.Transport, res.Reconnects)
	e.check("upgrade", "zero failed requests", res.Failed == 0, "%d replies, %d failed%s", res.Requests, res.Failed, codes(res))
	e.check("upgrade", "no update lost or doubled", len(res.Violations) == 0 && ck.OK(),
		"%d acknowledged updates checked against the ledger", ck.Updates)
	return nil
}

// hasTitle reports whether the serving worker's player state has the
// Title field (admin /v1/player decodes a player through the stored schema).
func (e *env) hasTitle(ctx context.Context, p *hostproc.Proc) (bool, error) {
	var doc map[string]any
	if err := p.Admin(ctx, "GET", fmt.Sprintf("/v1/player?id=%d", 1), &doc); err != nil {
		return false, err
	}
	return hasKey(doc, "Title"), nil
}

// hasKey looks for key at any depth of a decoded JSON document.
func hasKey(v any, key string) bool {
	switch x := v.(type) {
	case map[string]any:
		for k, sub := range x {
			if k == key || hasKey(sub, key) {
				return true
			}
		}
	case []any:
		for _, sub := range x {
			if hasKey(sub, key) {
				return true
			}
		}
	}
	return false
}

// buildAs builds the plugin source src (module-relative) for bins as
// version: a copy of the source, inside the module so that its imports
// resolve, with the descriptor's Version "1.0.0" rewritten (hhbuild refuses
// a -version its descriptor does not say).
func buildAs(bins *hostproc.Bins, src, name, version, out string) error {
	gen := filepath.Join("examples", "chaos", "testdata", fmt.Sprintf("gen-%d-%s-%s", os.Getpid(), name, version))
	abs := filepath.Join(bins.Root, gen)
	defer os.RemoveAll(abs)
	if err := os.CopyFS(abs, os.DirFS(filepath.Join(bins.Root, src))); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(abs, "*.go"))
	if err != nil {
		return err
	}
	found := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if nb := bytes.ReplaceAll(b, []byte(`Version: "1.0.0"`), []byte(`Version: "`+version+`"`)); !bytes.Equal(nb, b) {
			found = true
			if err := os.WriteFile(f, nb, 0o644); err != nil {
				return err
			}
		}
	}
	if !found {
		return fmt.Errorf("%s: no descriptor Version \"1.0.0\" to rewrite", src)
	}
	_, err = bins.Plugin(gen, name, version, out)
	return err
}
