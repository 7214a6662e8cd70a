package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/unit"
)

const (
	serviceFile  = "systemd/hothost.service"
	mountFile    = "systemd/run-hothost.mount"
	sysusersFile = "systemd/hothost.sysusers"
	// defaultDrain is the host's drain bound when -drain-timeout is not
	// given: SIGTERM finishes within it, plus the final snapshot.
	defaultDrain = 10 * time.Second
)

// unitOptions reads a unit file into section -> key -> values (a key may
// repeat, as ExecStartPre does).
func unitOptions(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opts, err := unit.DeserializeOptions(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := map[string]map[string][]string{}
	for _, o := range opts {
		if out[o.Section] == nil {
			out[o.Section] = map[string][]string{}
		}
		out[o.Section][o.Name] = append(out[o.Section][o.Name], o.Value)
	}
	return out
}

// one returns the single value of section.key, failing if it is not set
// exactly once.
func one(t *testing.T, opts map[string]map[string][]string, section, key string) string {
	t.Helper()
	v := opts[section][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s is set %d times, want once: %q", section, key, len(v), v)
	}
	return v[0]
}

// requireTool finds a systemd tool or fails saying how to get it: these
// checks are never skipped (.ci/run installs systemd).
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed, so the systemd units cannot be checked: install systemd (apt-get install -y systemd; .ci/run does)", name)
	}
	return p
}

// TestSystemdVerify runs systemd-analyze verify on the units. It reports
// unknown keys only as warnings, so any output fails the test too. The
// service is verified with ExecStart pointing at the hothost these tests
// built, since verify also checks that the binary exists and is executable.
func TestSystemdVerify(t *testing.T) {
	analyze := requireTool(t, "systemd-analyze")
	bins, _ := hostBins(t)
	dir := t.TempDir()
	svc, err := os.ReadFile(serviceFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(svc), "ExecStart=/usr/local/bin/hothost ") {
		t.Fatalf("%s: ExecStart does not run /usr/local/bin/hothost", serviceFile)
	}
	svc = []byte(strings.Replace(string(svc), "ExecStart=/usr/local/bin/hothost ", "ExecStart="+bins.Hothost+" ", 1))
	mount, err := os.ReadFile(mountFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{filepath.Base(serviceFile): svc, filepath.Base(mountFile): mount} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(analyze, "verify", "./"+filepath.Base(serviceFile), "./"+filepath.Base(mountFile))
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestSysusers checks the user definition with systemd-sysusers against an
// empty root, writing nothing.
func TestSysusers(t *testing.T) {
	sysusers := requireTool(t, "systemd-sysusers")
	abs, err := filepath.Abs(sysusersFile) // a relative path is read below --root
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sysusers, "--dry-run", "--root", t.TempDir(), abs).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Creating user 'hothost'") {
		t.Fatalf("systemd-sysusers --dry-run %s: %v\n%s", sysusersFile, err, out)
	}
}

// TestSystemdKeepsState checks what makes the state survive a restart of
// the service and what makes a stop drain, and that every flag ExecStart
// passes exists in the built host.
func TestSystemdKeepsState(t *testing.T) {
	svc, mnt := unitOptions(t, serviceFile), unitOptions(t, mountFile)

	where := one(t, mnt, "Mount", "Where")
	if got := one(t, mnt, "Mount", "Type"); got != "tmpfs" {
		t.Errorf("%s: Type=%s, want tmpfs", mountFile, got)
	}
	mopts := strings.Split(one(t, mnt, "Mount", "Options"), ",")
	for _, want := range []string{"huge=within_size"} {
		if !slices.Contains(mopts, want) {
			t.Errorf("%s: Options lack %s: %q", mountFile, want, mopts)
		}
	}
	if !hasPrefixIn(mopts, "size=") {
		t.Errorf("%s: the tmpfs has no size= (it would default to half of RAM): %q", mountFile, mopts)
	}
	if got := one(t, svc, "Unit", "RequiresMountsFor"); got != where {
		t.Errorf("%s: RequiresMountsFor=%s, want the state tmpfs %s", serviceFile, got, where)
	}

	// go-systemd joins continued lines but keeps each line's trailing
	// backslash, which systemd reads as a space.
	start := slices.DeleteFunc(strings.Fields(one(t, svc, "Service", "ExecStart")), func(s string) bool { return s == `\` })
	flags := checkHostArgs(t, start[1:])
	if shm := flags["shm-dir"]; !strings.HasPrefix(shm, where+"/") {
		t.Errorf("-shm-dir %q is not on the tmpfs %s: the segment would not outlive the service as intended", shm, where)
	}
	if !strings.HasSuffix(flags["admin-token-file"], "}/admin-token") || len(svc["Service"]["LoadCredential"]) != 1 {
		t.Errorf("the admin token file %q should be the LoadCredential %q", flags["admin-token-file"], svc["Service"]["LoadCredential"])
	}
	pre := strings.Join(svc["Service"]["ExecStartPre"], "\n")
	if !strings.Contains(pre, flags["shm-dir"]) {
		t.Errorf("no ExecStartPre creates -shm-dir %s for the service's user: %q", flags["shm-dir"], pre)
	}

	for key, want := range map[string]string{"Restart": "always", "KillSignal": "SIGTERM", "KillMode": "mixed", "RemoveIPC": "no"} {
		if got := one(t, svc, "Service", key); got != want {
			t.Errorf("%s: %s=%s, want %s", serviceFile, key, got, want)
		}
	}
	stop, err := time.ParseDuration(one(t, svc, "Service", "TimeoutStopSec"))
	if err != nil {
		t.Fatal(err)
	}
	if drain := drainTimeout(t, flags); stop <= 2*drain {
		t.Errorf("TimeoutStopSec=%v is not well above the drain bound %v: systemd would SIGKILL before the final snapshot", stop, drain)
	}
}

// TestSystemdPassesExitStatus runs the unit's ExecStopPost script as
// systemd would after each way the host can end, and checks that it leaves
// the file EnvironmentFile reads with HOTHOST_PREV_EXIT as the host expects
// it: "signal: ..." for a death by signal (not attributed to a plugin),
// "exit status N" otherwise.
func TestSystemdPassesExitStatus(t *testing.T) {
	svc := unitOptions(t, serviceFile)
	const envFile = "/run/hothost/prev-exit"
	if got := one(t, svc, "Service", "EnvironmentFile"); got != "-"+envFile {
		t.Fatalf("EnvironmentFile=%s, want -%s (optional: there is none before the first stop)", got, envFile)
	}
	post := one(t, svc, "Service", "ExecStopPost")
	// "+": run as root, since /run/hothost itself is root's.
	script, ok := strings.CutPrefix(post, "+/bin/sh -c '")
	if !ok || !strings.HasSuffix(script, "'") || !strings.Contains(script, envFile) {
		t.Fatalf("ExecStopPost=%s: want +/bin/sh -c '...' writing %s", post, envFile)
	}
	// systemd turns $$ into $ and leaves the rest of a quoted word as is.
	out := filepath.Join(t.TempDir(), "prev-exit")
	script = strings.ReplaceAll(strings.ReplaceAll(strings.TrimSuffix(script, "'"), "$$", "$"), envFile, out)
	for _, c := range []struct{ code, status, want string }{
		{"exited", "0", "exit status 0"},
		{"exited", "7", "exit status 7"},
		{"killed", "KILL", "signal: KILL"},
		{"dumped", "ABRT", "signal: ABRT"},
	} {
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Env = append(os.Environ(), "EXIT_CODE="+c.code, "EXIT_STATUS="+c.status)
		if o, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ExecStopPost with EXIT_CODE=%s: %v\n%s", c.code, err, o)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(b), "HOTHOST_PREV_EXIT="+c.want+"\n"; got != want {
			t.Errorf("EXIT_CODE=%s EXIT_STATUS=%s: wrote %q, want %q", c.code, c.status, got, want)
		}
	}
}

// drainTimeout is the host's drain bound for these flags.
func drainTimeout(t *testing.T, flags map[string]string) time.Duration {
	t.Helper()
	v, ok := flags["drain-timeout"]
	if !ok {
		return defaultDrain
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("-drain-timeout %q: %v", v, err)
	}
	return d
}

func hasPrefixIn(list []string, prefix string) bool {
	for _, v := range list {
		if strings.HasPrefix(v, prefix) {
			return true
		}
	}
	return false
}
