package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hothost/hothost/internal/hostproc"
)

// buildCoins builds n versions of plugins/coin/v1 with the real build tool,
// like this test binary, and returns the .so paths.
func buildCoins(t *testing.T, n int) []string {
	t.Helper()
	root, err := hostproc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hhbuild := filepath.Join(dir, "hhbuild")
	if out, err := runIn(root, "go", "build", "-o", hhbuild, "./cmd/hhbuild"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	src, err := os.ReadFile(filepath.Join(root, "plugins", "coin", "v1", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	// Sources must sit inside the module to import its packages.
	gen := filepath.Join(root, "examples", "versionmem", "testdata", fmt.Sprintf("gen-%d", os.Getpid()))
	t.Cleanup(func() { os.RemoveAll(gen) })
	var out []string
	for i := range n {
		v := fmt.Sprintf("9.0.%d", i)
		d := filepath.Join(gen, fmt.Sprintf("coin%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		s := strings.Replace(string(src), `Version: "1.0.0"`, `Version: "`+v+`"`, 1)
		if err := os.WriteFile(filepath.Join(d, "main.go"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if o, err := runIn(root, hhbuild, "-src", d, "-name", "coin", "-version", v, "-out", filepath.Join(dir, "so"), "-like", self); err != nil {
			t.Fatalf("%v\n%s", err, o)
		}
		out = append(out, filepath.Join(dir, "so", "coin-"+v+".so"))
	}
	return out
}

func runIn(dir, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}

func section(t *testing.T, secs []Section, name string) Section {
	t.Helper()
	i := slices.IndexFunc(secs, func(s Section) bool { return s.Name == name })
	if i < 0 {
		t.Fatalf("no section %s in %v", name, secs)
	}
	return secs[i]
}

// Loading real plugins shows where their memory is: ld.so's relocations
// dirty .data.rel.ro, it read every relocation, the process grew, and the
// runtime registered the plugin's types. MADV_DONTNEED then drops the
// relocation table's pages, which nothing reads after the load.
func TestMeasureAndDrop(t *testing.T) {
	sos := buildCoins(t, 2)
	r, err := measure(sos[:1], false)
	if err != nil {
		t.Fatal(err)
	}
	if r.RSS <= 0 || r.Typelinks == 0 || r.Itabs == 0 {
		t.Fatalf("RSS growth %.0f, %v typelinks, %v itabs: want all positive", r.RSS, r.Typelinks, r.Itabs)
	}
	if s := section(t, r.Sections, ".data.rel.ro"); s.Anon == 0 {
		t.Fatalf(".data.rel.ro has no private pages after relocation: %+v", s)
	}
	if s := section(t, r.Sections, ".rela.dyn"); s.File == 0 {
		t.Fatalf(".rela.dyn not resident after ld.so applied it: %+v", s)
	}
	var md strings.Builder
	r.WriteMarkdown(&md)
	if !strings.Contains(md.String(), "| .data.rel.ro |") {
		t.Fatalf("markdown lacks the section table:\n%s", md.String())
	}

	d, err := measure(sos[1:], true)
	if err != nil {
		t.Fatal(err)
	}
	if s := section(t, d.Sections, ".rela.dyn"); s.File != 0 {
		t.Fatalf(".rela.dyn still resident after MADV_DONTNEED: %+v", s)
	}
	if a, b := section(t, d.Sections, ".data.rel.ro").Anon, section(t, r.Sections, ".data.rel.ro").Anon; a != b {
		t.Fatalf(".data.rel.ro private %.0f with madvise, %.0f without: the relocated pages must stay", a, b)
	}
}
