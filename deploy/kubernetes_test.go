package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hothost/hothost/client"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	kyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const manifestFile = "kubernetes/hothost.yaml"

// decodeManifests decodes every document of the manifest strictly into its
// Kubernetes API type: an unknown kind, an unknown or duplicated field, or a
// value of the wrong type is an error naming it.
func decodeManifests(t *testing.T) []runtime.Object {
	t.Helper()
	b, err := os.ReadFile(manifestFile)
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	ser := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})
	r := kyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var objs []runtime.Object
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", manifestFile, i, err)
		}
		if j, err := yaml.YAMLToJSON(doc); err != nil || string(j) == "null" {
			continue // comments only
		}
		obj, _, err := ser.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: document %d: %v", manifestFile, i, err)
		}
		objs = append(objs, obj)
	}
	return objs
}

func statefulSet(t *testing.T) *appsv1.StatefulSet {
	t.Helper()
	for _, o := range decodeManifests(t) {
		if s, ok := o.(*appsv1.StatefulSet); ok {
			return s
		}
	}
	t.Fatalf("%s has no StatefulSet", manifestFile)
	return nil
}

// hostContainer is the StatefulSet's hothost container.
func hostContainer(t *testing.T, s *appsv1.StatefulSet) *corev1.Container {
	t.Helper()
	cs := s.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "hothost" {
		t.Fatalf("want one container named hothost, have %d", len(cs))
	}
	return &cs[0]
}

// mountOf returns the volume mounted at dir or at a parent of it.
func mountOf(c *corev1.Container, dir string) (corev1.VolumeMount, bool) {
	for _, m := range c.VolumeMounts {
		if dir == m.MountPath || strings.HasPrefix(dir, m.MountPath+"/") {
			return m, true
		}
	}
	return corev1.VolumeMount{}, false
}

func volume(s *appsv1.StatefulSet, name string) (corev1.Volume, bool) {
	for _, v := range s.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return corev1.Volume{}, false
}

// TestManifestsDecodeStrictly checks that the manifest holds what
// docs/SCALING.md describes, each decoded strictly.
func TestManifestsDecodeStrictly(t *testing.T) {
	var kinds []string
	for _, o := range decodeManifests(t) {
		kinds = append(kinds, fmt.Sprintf("%T", o))
	}
	want := []string{"*v1.Service", "*v1.StatefulSet", "*v1.PodDisruptionBudget", "*v1.NetworkPolicy"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("%s holds %v, want %v", manifestFile, kinds, want)
	}
}

// TestStatefulSetKeepsState checks where each kind of state lives: the
// segment on a memory emptyDir (kept across container restarts), the data
// directory (snapshots, plugins) on a volume claim, the admin token from a
// Secret; that the memory limit holds the tmpfs; and that the grace period
// is above the drain bound. Every flag is checked against the built host.
func TestStatefulSetKeepsState(t *testing.T) {
	s := statefulSet(t)
	c := hostContainer(t, s)
	flags := checkHostArgs(t, c.Args)

	shm, ok := mountOf(c, flags["shm-dir"])
	if !ok {
		t.Fatalf("-shm-dir %s is on no volume", flags["shm-dir"])
	}
	v, ok := volume(s, shm.Name)
	if !ok || v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory || v.EmptyDir.SizeLimit == nil {
		t.Fatalf("-shm-dir's volume %q is not an emptyDir with medium Memory and a sizeLimit: %v", shm.Name, v.EmptyDir)
	}
	limit := c.Resources.Limits.Memory()
	if limit.Cmp(*v.EmptyDir.SizeLimit) <= 0 {
		t.Errorf("memory limit %v does not exceed the shm sizeLimit %v: the tmpfs pages are charged to the container", limit, v.EmptyDir.SizeLimit)
	}

	data, ok := mountOf(c, flags["data"])
	if !ok || !slices.ContainsFunc(s.Spec.VolumeClaimTemplates, func(p corev1.PersistentVolumeClaim) bool { return p.Name == data.Name }) {
		t.Fatalf("-data %s is not on a volumeClaimTemplate (snapshots must outlive the pod)", flags["data"])
	}
	if pm, ok := mountOf(c, flags["plugins"]); !ok || pm.Name != data.Name {
		t.Errorf("-plugins %s is not on the data volume: versions swapped in would not outlive the pod", flags["plugins"])
	}

	if flags["admin-addr"] == "" {
		t.Errorf("no -admin-addr: Prometheus cannot scrape /metrics")
	}
	tok, ok := mountOf(c, flags["admin-token-file"])
	if tv, _ := volume(s, tok.Name); !ok || tv.Secret == nil {
		t.Errorf("-admin-token-file %s is not on a Secret volume", flags["admin-token-file"])
	}
	if cfg, ok := mountOf(c, flags["config"]); ok {
		if cv, _ := volume(s, cfg.Name); cv.ConfigMap == nil {
			t.Errorf("-config %s is mounted but not from a ConfigMap", flags["config"])
		}
	}

	var grace int64 = 30 // Kubernetes' default
	if g := s.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	if drain := drainTimeout(t, flags); float64(grace) <= 2*drain.Seconds() {
		t.Errorf("terminationGracePeriodSeconds %d is not well above the drain bound %v", grace, drain)
	}
	if ctx := s.Spec.Template.Spec.SecurityContext; ctx == nil || ctx.RunAsUser == nil || *ctx.RunAsUser != imageUID {
		t.Errorf("pod does not run as the image's user %d", imageUID)
	}
}

// probeCommands are the exec commands of the hothost container's probes
// and preStop hook, by name.
func probeCommands(t *testing.T, c *corev1.Container) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.Exec == nil {
			t.Fatalf("%s probe is not an exec probe", name)
		}
		out[name] = p.Exec.Command
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil {
		t.Fatal("no exec preStop hook")
	}
	out["preStop"] = c.Lifecycle.PreStop.Exec.Command
	return out
}

// TestProbesOnRealHost runs the probe and preStop commands of the manifest
// against a running host, from a directory laid out as the container's
// working directory (data/admin.sock), with the built hotctl on PATH:
// everything passes while it serves; after preStop it is draining, and
// readiness fails while liveness still passes.
func TestProbesOnRealHost(t *testing.T) {
	c := hostContainer(t, statefulSet(t))
	cmds := probeCommands(t, c)
	bins, _ := hostBins(t)
	t.Setenv("PATH", bins.Dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	p := startHost(t)
	run := func(name string) error {
		cmd := exec.Command(cmds[name][0], cmds[name][1:]...)
		cmd.Dir = p.Cfg.Dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %q: %w\n%s", name, cmds[name], err, out)
		}
		return nil
	}
	for _, name := range []string{"startup", "readiness", "liveness"} {
		if err := run(name); err != nil {
			t.Fatalf("serving host fails its %v", err)
		}
	}
	if err := run("preStop"); err != nil {
		t.Fatal(err)
	}
	if err := run("readiness"); err == nil {
		t.Fatalf("readiness passes on a draining host")
	}
	if err := run("liveness"); err != nil {
		t.Fatalf("a draining host fails liveness (the kubelet would restart it mid-drain): %v", err)
	}
	conn, err := client.Dial(p.Addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if r, err := conn.Do("login 1"); err != nil || r.Code != "draining" {
		t.Fatalf("login after preStop: %v %v, want err draining", r, err)
	}
}

// TestSeedPlugins runs the init container's script with its two
// directories moved under a temporary one: it copies the image's plugins
// into the data volume and never replaces a file already there (a version
// swapped in at run time, or one an operator changed).
func TestSeedPlugins(t *testing.T) {
	s := statefulSet(t)
	inits := s.Spec.Template.Spec.InitContainers
	if len(inits) != 1 || len(inits[0].Command) != 3 || inits[0].Command[0] != "sh" {
		t.Fatalf("want one init container running sh -c SCRIPT, have %+v", inits)
	}
	script := inits[0].Command[2]
	const seedDir, dataDir = "/opt/hothost/plugins", "/var/lib/hothost/data"
	if !strings.Contains(script, seedDir) || !strings.Contains(script, dataDir+"/plugins") {
		t.Fatalf("the seed script does not copy %s into %s/plugins:\n%s", seedDir, dataDir, script)
	}
	_, plugins := hostBins(t)
	tmp := t.TempDir()
	script = strings.ReplaceAll(strings.ReplaceAll(script, seedDir, plugins), dataDir, filepath.Join(tmp, "data"))
	seed := func() {
		if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
			t.Fatalf("seed script: %v\n%s", err, out)
		}
	}
	seed()
	want, _ := filepath.Glob(filepath.Join(plugins, "*"))
	for _, f := range want {
		a, _ := os.ReadFile(f)
		b, err := os.ReadFile(filepath.Join(tmp, "data", "plugins", filepath.Base(f)))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s not seeded: %v", filepath.Base(f), err)
		}
	}
	kept := filepath.Join(tmp, "data", "plugins", filepath.Base(want[0]))
	if err := os.WriteFile(kept, []byte("changed by an operator"), 0o600); err != nil {
		t.Fatal(err)
	}
	seed()
	if b, _ := os.ReadFile(kept); string(b) != "changed by an operator" {
		t.Fatalf("a second run replaced %s", kept)
	}
}
