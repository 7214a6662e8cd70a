package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// versionMem runs examples/versionmem on the coin versions the host just
// loaded: where one version's memory is, and what MADV_DONTNEED of its
// read-only mappings saves, both in this run.
func (b *bench) versionMem(sos []string) error {
	bin := filepath.Join(b.dir, "bin", "versionmem")
	cmd := exec.Command("go", "build", "-o", bin, "./examples/versionmem")
	cmd.Dir = b.bins.Root
	if o, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./examples/versionmem: %v: %s", err, strings.TrimSpace(string(o)))
	}
	var tables []string
	var growth []float64
	for _, flags := range [][]string{{"-md"}, {"-md", "-madvise"}} {
		out, err := exec.CommandContext(b.ctx, bin, append(flags, sos...)...).Output()
		if err != nil {
			return fmt.Errorf("versionmem %v: %w", flags, err)
		}
		m := rssGrowthRE.FindSubmatch(out)
		if m == nil {
			return fmt.Errorf("versionmem %v: no VmRSS growth in its output:\n%s", flags, out)
		}
		kib, _ := strconv.ParseFloat(string(m[1]), 64)
		growth = append(growth, kib)
		tables = append(tables, string(out))
	}
	b.mem = strings.Join(tables, "\n")
	b.add("RSS per version: MADV_DONTNEED of its read-only mappings vs plain", fmt.Sprintf("%.2f MiB", growth[1]/1024),
		fmt.Sprintf("%.2f MiB", growth[0]/1024), x(growth[1], growth[0]),
		fmt.Sprintf("examples/versionmem, %d coin versions, plugin.Open in one process; tables below", len(sos)))
	return nil
}

var rssGrowthRE = regexp.MustCompile(`\*\*VmRSS growth\*\* \| \*\*(-?\d+)\*\*`)

const versionMemText = `examples/versionmem loads the coin versions above into one process (which links the host's
packages, as cmd/hothost does), one after another with plugin.Open, calls each handler once (a
version that served a request has touched its code), then reads /proc/self/pagemap
over each plugin's mapping and gives each resident page to the ELF section covering most of it:
private (written: relocations, variables, or bss the GC scanned, since this kernel backs a read of
untouched anonymous memory with a fresh page), or a clean page of the file (shared with the page
cache: counted in RSS, but the kernel can drop and re-read it). Go heap and runtime figures come
from runtime/metrics after a GC and debug.FreeOSMemory, the C heap from smaps. Second table set:
the same, with MADV_DONTNEED on each plugin's read-only segments right after it loaded (before its
handlers run). A fault on a clean file page maps the whole page-cache folio around it (kernel 6.18 on
ext4: up to 2 MiB when the file was written in one piece, as hostproc.Install and cp do), so how much
of a plugin's code is resident depends on how its file got into the page cache.
`
