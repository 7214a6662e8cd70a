package host_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hothost/hothost/host"
)

// The host killed (TxKillEnv) inside a give's commit, at each point of it:
// journal prepared, one player written, both written but not committed.
// The next start rolls the give back whole: not one coin created or
// destroyed, and the give answered by no reply.
func TestKillInsideACrossPlayerCommit(t *testing.T) {
	t.Parallel()
	for point := range 3 {
		t.Run(fmt.Sprintf("point-%d", point), func(t *testing.T) {
			p, cfg := startHost(t)
			ada, _ := dial(t, p, 41), dial(t, p, 42)
			for range 5 {
				do(t, ada, "work") // 50 coins
			}
			do(t, ada, "give 42 5") // a commit of two players the seam does not count
			p.Stop()

			armed := cfg
			armed.Env = []string{fmt.Sprintf("%s=1:%d", host.TxKillEnv, point)}
			p = start(t, armed)
			ada = dial(t, p, 41)
			if r, err := ada.Do("give 42 15"); err == nil {
				t.Fatalf("the give was answered: %v", r)
			}
			<-p.Done()
			if got := p.Cmd.ProcessState.String(); got != "signal: killed" {
				t.Fatalf("the armed host ended with %q", got)
			}
			cfg.Env = []string{host.PrevExitEnv + "=" + p.Cmd.ProcessState.String()}
			p = start(t, cfg)
			var st host.Status
			if err := p.Admin(context.Background(), "GET", "/v1/status", &st); err != nil {
				t.Fatal(err)
			}
			if a, b := coins(t, p, 41), coins(t, p, 42); a != 45 || b != 5 || !strings.Contains(p.Log(), "rolled back an unfinished transaction") {
				t.Fatalf("after the kill: ada %d bob %d (want 45 and 5); state %s: %s", a, b, st.State.Opened, st.State.Report)
			}
		})
	}
}

func TestTxKillEnvRefusesBadValues(t *testing.T) {
	t.Parallel()
	p, cfg := startHost(t)
	p.Stop()
	for _, v := range []string{"x", "0:1", "3", "2:-1", "1:9"} {
		cfg.Env = []string{host.TxKillEnv + "=" + v}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := bins.Start(ctx, cfg)
		cancel()
		if err == nil || !strings.Contains(err.Error(), host.TxKillEnv) || !strings.Contains(err.Error(), v) || !strings.Contains(err.Error(), "want N:P") {
			t.Errorf("%s=%s: %v", host.TxKillEnv, v, err)
		}
	}
}
