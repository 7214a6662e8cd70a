// Command versionmem measures what each loaded plugin version costs a
// process in memory, and where that memory is. It loads the given .so files
// into itself one after another with plugin.Open (Go never unloads them),
// calls each handler of each version once (as a first request would), then
// attributes every resident page of each plugin's mapping to the ELF
// section it holds (/proc/self/pagemap: present, private or still the file's
// page) and the rest of the growth to the Go runtime (runtime/metrics) and
// the C heap (smaps). examples/e2ebench runs it on the coin versions it
// builds and puts its table in BENCHMARKS.md.
//
//	versionmem [-madvise] [-md] a.so b.so ...
//
// The plugins must be built exactly like this binary (the Makefile's flags;
// cmd/hhbuild -like <this binary>). -madvise shows what the host would save
// by dropping, right after plugin.Open, the clean file pages of each
// plugin's read-only mappings (headers and dynamic symbols, code, rodata,
// pclntab) with MADV_DONTNEED.
//
// It only reads /proc and calls plugin.Open: it must never change how the
// host loads a plugin, and never be linked into the host.
package main

import (
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"plugin"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader"
	"github.com/hothost/hothost/plugins/game"

	// The host's packages, linked in so that this process already holds
	// (and has initialised) every package a plugin shares with a real
	// host: a plugin then costs here what it costs in cmd/hothost.
	_ "github.com/hothost/hothost/host"
)

func main() {
	madv := flag.Bool("madvise", false, "MADV_DONTNEED the read-only mappings of each plugin right after loading it")
	md := flag.Bool("md", false, "print only the markdown tables (for BENCHMARKS.md)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: versionmem [-madvise] [-md] a.so b.so ...")
		os.Exit(2)
	}
	r, err := measure(flag.Args(), *madv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "versionmem:", err)
		os.Exit(1)
	}
	if !*md {
		fmt.Printf("%d versions loaded in %v, %s, %d handler calls\n\n", len(r.Plugins), r.Elapsed.Round(time.Millisecond), r.Mode, r.Called)
	}
	r.WriteMarkdown(os.Stdout)
}

// Report is what loading the plugins cost, per version (averages over
// every plugin loaded).
type Report struct {
	Mode    string
	Plugins []string
	Elapsed time.Duration
	// Called is how many handler calls ran, once per handler per version
	// (a version that serves touches its code again after any madvise).
	Called int
	// Process growth per version, bytes: VmRSS, its anonymous and file
	// parts (/proc/self/status), and PSS (smaps_rollup).
	RSS, RSSAnon, RSSFile, PSS float64
	// Sections is the resident memory of each ELF section of a plugin.
	Sections []Section
	// Go runtime growth per version, bytes (runtime/metrics, after a GC
	// and debug.FreeOSMemory): live heap objects, runtime metadata and
	// off-heap "other" (GC masks of the module's data and bss, itabs).
	GoHeap, GoMeta, GoOther float64
	// CHeap is the growth of the brk heap (glibc malloc: ld.so's link map,
	// dlopen's scope lists) per version, from smaps.
	CHeap float64
	// Typelinks and Itabs are the counts the runtime registers per plugin
	// (typemap entries, itab table entries).
	Typelinks, Itabs float64
}

// Section is one ELF section of a plugin, averaged over the plugins.
type Section struct {
	Name string
	Size float64 // bytes in the file image (memory size for NOBITS)
	// Anon is resident private memory: pages written since mapping
	// (relocations, variables, zero-filled bss touched).
	Anon float64
	// File is resident clean pages shared with the page cache; they
	// count in RSS but the kernel can drop and re-read them.
	File float64
	// Zero is pages mapped to the shared zero page: present, not in RSS.
	Zero float64
}

// measure loads every plugin and reports the cost per version.
func measure(paths []string, madv bool) (*Report, error) {
	r := &Report{Plugins: paths, Mode: "plugin.Open, each handler called once"}
	if madv {
		r.Mode = "plugin.Open, MADV_DONTNEED of its read-only mappings, each handler called once"
	}
	before, err := snap()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		pl, err := plugin.Open(abs)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", p, err)
		}
		sym, err := pl.Lookup(abi.Symbol)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if madv {
			if err := loader.ReleaseCleanPages(abs); err != nil {
				return nil, err
			}
		}
		if m, ok := sym.(*abi.Module); ok {
			r.Called += exercise(m)
		}
	}
	r.Elapsed = time.Since(t0)
	after, err := snap()
	if err != nil {
		return nil, err
	}
	n := float64(len(paths))
	per := func(k string) float64 { return float64(after.status[k]-before.status[k]) / n }
	r.RSS, r.RSSAnon, r.RSSFile = per("VmRSS"), per("RssAnon"), per("RssFile")
	r.PSS = float64(after.pss-before.pss) / n
	r.CHeap = float64(after.cheap-before.cheap) / n
	m := func(keys ...string) float64 {
		var s float64
		for _, k := range keys {
			s += float64(after.metrics[k]) - float64(before.metrics[k])
		}
		return s / n
	}
	r.GoHeap = m("/memory/classes/heap/objects:bytes")
	r.GoMeta = m("/memory/classes/metadata/mspan/inuse:bytes", "/memory/classes/metadata/mcache/inuse:bytes",
		"/memory/classes/metadata/other:bytes")
	r.GoOther = m("/memory/classes/other:bytes")
	for _, p := range paths {
		abs, _ := filepath.Abs(p)
		secs, counts, err := residency(abs)
		if err != nil {
			return nil, err
		}
		r.add(secs, n)
		r.Typelinks += float64(counts[0]) / n
		r.Itabs += float64(counts[1]) / n
	}
	return r, nil
}

// exercise calls each handler of m once, as the host would on a first
// request, on a fresh example-game player. What a handler returns does not
// matter here, only the pages its call touches; a handler written for
// another game's state panics on its type assertion, which is recovered.
func exercise(m *abi.Module) int {
	cfg := game.DefaultConfig()
	n := 0
	for _, h := range m.Handlers {
		func() {
			defer func() { recover() }()
			h(&abi.Call{Player: 1, State: &game.Player{Coins: 1000}, Config: &cfg, Now: time.Now()})
		}()
		n++
	}
	return n
}

// add sums one plugin's sections into r's averages, by name, in address order.
func (r *Report) add(secs []Section, n float64) {
	for _, s := range secs {
		i := slices.IndexFunc(r.Sections, func(x Section) bool { return x.Name == s.Name })
		if i < 0 {
			r.Sections = append(r.Sections, Section{Name: s.Name})
			i = len(r.Sections) - 1
		}
		r.Sections[i].Size += s.Size / n
		r.Sections[i].Anon += s.Anon / n
		r.Sections[i].File += s.File / n
		r.Sections[i].Zero += s.Zero / n
	}
}

type snapshot struct {
	status  map[string]int64
	pss     int64
	cheap   int64
	metrics map[string]uint64
}

// snap collects garbage, returns free heap pages to the OS (what is left is
// what the loads keep), then reads the process's figures.
func snap() (*snapshot, error) {
	runtime.GC()
	debug.FreeOSMemory()
	s := &snapshot{status: map[string]int64{}, metrics: map[string]uint64{}}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		var k string
		var kb int64
		if n, _ := fmt.Sscanf(l, "%s %d kB", &k, &kb); n == 2 {
			s.status[strings.TrimSuffix(k, ":")] = kb << 10
		}
	}
	if s.pss, err = smapsField("/proc/self/smaps_rollup", "", "Pss:"); err != nil {
		return nil, err
	}
	if s.cheap, err = smapsField("/proc/self/smaps", "[heap]", "Rss:"); err != nil {
		return nil, err
	}
	var samples []metrics.Sample
	for _, d := range metrics.All() {
		if strings.HasPrefix(d.Name, "/memory/classes/") {
			samples = append(samples, metrics.Sample{Name: d.Name})
		}
	}
	metrics.Read(samples)
	for _, sm := range samples {
		s.metrics[sm.Name] = sm.Value.Uint64()
	}
	return s, nil
}

// smapsField sums field (in kB) over the mappings of an smaps file whose
// header line ends in name ("" for every mapping).
func smapsField(path, name, field string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var sum int64
	in := name == ""
	for l := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 0:
		case isMapLine(f):
			in = name == "" || f[len(f)-1] == name
		case in && f[0] == field && len(f) >= 2:
			var kb int64
			fmt.Sscan(f[1], &kb)
			sum += kb << 10
		}
	}
	return sum, nil
}

// isMapLine tells an smaps mapping header ("7f..-7f.. r-xp ...") from a field line.
func isMapLine(f []string) bool {
	return len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":")
}

// mapping is one line of /proc/self/maps.
type mapping struct {
	start, end uintptr
	offset     uint64
	dev        string // major:minor, hex
	inode      uint64
}

// base is the address the plugin file at path was loaded at: the start of
// its mapping at file offset 0 (its ELF image starts at virtual address 0).
// Mappings are matched by device and inode, not by name: the kernel shows
// the resolved path, and a file renamed over stays mapped.
func base(path string) (uintptr, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	dev := fmt.Sprintf("%02x:%02x", unix.Major(st.Dev), unix.Minor(st.Dev))
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	for l := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		var m mapping
		var perms string
		if n, _ := fmt.Sscanf(l, "%x-%x %s %x %s %d", &m.start, &m.end, &perms, &m.offset, &m.dev, &m.inode); n < 6 {
			return 0, fmt.Errorf("/proc/self/maps: cannot read %q", l)
		}
		if m.inode == st.Ino && m.dev == dev && m.offset == 0 {
			return m.start, nil
		}
	}
	return 0, fmt.Errorf("%s is not mapped", path)
}

// pagemap bits (Documentation/admin-guide/mm/pagemap.rst).
const (
	pmPresent   = 1 << 63
	pmFile      = 1 << 61 // file page or shared anonymous
	pmExclusive = 1 << 56 // mapped by this process only
)

// residency attributes the resident pages of the plugin loaded from path to
// its ELF sections: each page goes to the section that covers most of it.
// It also returns the plugin's typelink and itab counts.
func residency(path string) ([]Section, [2]int, error) {
	var counts [2]int
	at, err := base(path)
	if err != nil {
		return nil, counts, err
	}
	f, err := elf.Open(path)
	if err != nil {
		return nil, counts, err
	}
	defer f.Close()
	counts, err = moduleCounts(f)
	if err != nil {
		return nil, counts, err
	}
	var secs []*elf.Section
	var end uint64
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC != 0 && s.Size > 0 && s.Type != elf.SHT_NOBITS || s.Type == elf.SHT_NOBITS && s.Flags&elf.SHF_TLS == 0 && s.Size > 0 {
			secs = append(secs, s)
			end = max(end, s.Addr+s.Size)
		}
	}
	slices.SortFunc(secs, func(a, b *elf.Section) int { return int(a.Addr) - int(b.Addr) })
	pm, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return nil, counts, err
	}
	defer pm.Close()
	const page = 4096
	npages := (end + page - 1) / page
	words := make([]byte, 8*npages)
	if _, err := pm.ReadAt(words, int64(uint64(at)/page*8)); err != nil && !errors.Is(err, io.EOF) {
		return nil, counts, fmt.Errorf("pagemap: %w", err)
	}
	out := make([]Section, len(secs))
	for i, s := range secs {
		out[i] = Section{Name: s.Name, Size: float64(s.Size)}
	}
	for p := range npages {
		w := uint64(0)
		for k := range 8 {
			w |= uint64(words[8*p+uint64(k)]) << (8 * k)
		}
		if w&pmPresent == 0 {
			continue
		}
		lo, hi := p*page, (p+1)*page
		best, bestLen := -1, uint64(0)
		for i, s := range secs {
			ov := min(hi, s.Addr+s.Size) - max(lo, s.Addr)
			if s.Addr < hi && s.Addr+s.Size > lo && ov > bestLen {
				best, bestLen = i, ov
			}
		}
		if best < 0 {
			continue // padding between segments
		}
		switch {
		case w&pmFile != 0:
			out[best].File += page
		case w&pmExclusive != 0:
			out[best].Anon += page
		default:
			// The shared zero page, mapped by a read of untouched bss
			// (the GC scans every module's bss as roots): not in RSS.
			out[best].Zero += page
		}
	}
	return out, counts, nil
}

// moduleCounts reads how many typelinks and itabs the plugin's module data
// lists, from the symbol sizes the linker wrote (4 and 8 bytes per entry).
// A plugin linked with -s has no symbol table: both are then 0.
func moduleCounts(f *elf.File) ([2]int, error) {
	syms, err := f.Symbols()
	if errors.Is(err, elf.ErrNoSymbols) {
		return [2]int{}, nil
	}
	if err != nil {
		return [2]int{}, fmt.Errorf("symbols: %w", err)
	}
	var c [2]int
	for _, s := range syms {
		switch s.Name {
		case "runtime.typelink":
			c[0] = int(s.Size / 4)
		case "runtime.itablink":
			c[1] = int(s.Size / 8)
		}
	}
	return c, nil
}

// WriteMarkdown writes the report as two tables: where a version's memory
// is, and each plugin section's residency.
func (r *Report) WriteMarkdown(w io.Writer) {
	kib := func(b float64) string { return fmt.Sprintf("%.0f", b/1024) }
	var anon, file float64
	for _, s := range r.Sections {
		anon += s.Anon
		file += s.File
	}
	rest := r.RSSAnon - anon - r.GoHeap - r.CHeap
	fmt.Fprintf(w, "| per loaded version (%d versions, %s) | KiB |\n|---|---:|\n", len(r.Plugins), r.Mode)
	fmt.Fprintf(w, "| **VmRSS growth** | **%s** |\n", kib(r.RSS))
	fmt.Fprintf(w, "| PSS growth | %s |\n", kib(r.PSS))
	fmt.Fprintf(w, "| plugin mappings, private (relocated or written) | %s |\n", kib(anon))
	fmt.Fprintf(w, "| plugin mappings, clean file pages (page cache) | %s |\n", kib(file))
	count := func(n float64, what string) string {
		if n == 0 { // a plugin linked with -s: no symbol table to count from
			return what
		}
		return fmt.Sprintf("%.0f %s", n, what)
	}
	fmt.Fprintf(w, "| Go heap, live objects (typemap of %s, plugin symbols, ...) | %s |\n", count(r.Typelinks, "typelinks"), kib(r.GoHeap))
	fmt.Fprintf(w, "| Go runtime metadata and off-heap (GC masks, %s, ...), mapped | %s |\n", count(r.Itabs, "itabs"), kib(r.GoMeta+r.GoOther))
	fmt.Fprintf(w, "| C heap (brk: ld.so link map, scopes) | %s |\n", kib(r.CHeap))
	fmt.Fprintf(w, "| other anonymous (Go heap pages not yet released, runtime off-heap, mmaps) | %s |\n", kib(rest))
	fmt.Fprintf(w, "\n| plugin section | size KiB | resident private KiB | resident file KiB | zero page KiB (not RSS) |\n|---|---:|---:|---:|---:|\n")
	for _, s := range r.Sections {
		if s.Anon+s.File+s.Zero == 0 && s.Size < 4096 {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", s.Name, kib(s.Size), kib(s.Anon), kib(s.File), kib(s.Zero))
	}
}
