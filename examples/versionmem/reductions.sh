#!/usr/bin/env bash
# examples/versionmem/reductions.sh: what each candidate reduction of the
# memory a loaded plugin version costs would give, measured with versionmem.
#
# Each variant is a scratch copy of this checkout (git archive of HEAD, so
# commit first) with one change applied, then: build versionmem and hhbuild
# there, build N versions of plugins/coin/v1 like versionmem, copy each .so
# with one write (as hostproc.Install and an operator's cp do: the page
# cache then holds it as the host would see it) and load them all, with
# and without -madvise. Nothing in this checkout is changed.
#
#   base    this checkout as is
#   strip   plugins linked with -ldflags=-s -w (cmd/hhbuild)
#   noslog  abi.Call.Log an interface of abi's own: abi stops importing log/slog
#   nofmt   noslog, and abi and plugins/game format without fmt
#   floor   a plugin that imports nothing: the Go runtime every plugin carries
#
# Usage: examples/versionmem/reductions.sh [variant ...]   (N=6 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
export CGO_ENABLED="${CGO_ENABLED:-1}" GOFLAGS="${GOFLAGS:--trimpath}"
N="${N:-6}"
variants=("$@")
((${#variants[@]})) || variants=(base strip noslog nofmt floor)
root=$(mktemp -d /tmp/hothost-reductions-XXXXXX)
trap 'rm -rf "$root"' EXIT

noslog() {
	python3 - <<'EOF'
import re
p = 'abi/abi.go'
s = open(p).read()
s = s.replace('\t"log/slog"\n', '')
s = s.replace('\tLog    *slog.Logger\n', '\tLog    Logger\n')
s += '''
// Logger is what a handler may log through; *slog.Logger is one.
type Logger interface {
	Debug(msg string, args ...any)
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}
'''
open(p, 'w').write(s)
EOF
}

nofmt() {
	noslog
	python3 - <<'EOF'
p = 'abi/abi.go'
s = open(p).read()
s = s.replace('import (\n\t"fmt"\n', 'import (\n\t"strconv"\n')
s = s.replace('fmt.Sprintf(format, args...)', 'sprintf(format, args)')
s += '''
// sprintf formats %d, %s, %q and %v of ints and strings: what handlers reply.
func sprintf(format string, args []any) string {
	var b []byte
	for i := 0; i < len(format); i++ {
		if format[i] != '%' || i+1 == len(format) {
			b = append(b, format[i])
			continue
		}
		i++
		if len(args) == 0 {
			b = append(b, '%', format[i])
			continue
		}
		a := args[0]
		args = args[1:]
		switch v := a.(type) {
		case string:
			if format[i] == 'q' {
				b = strconv.AppendQuote(b, v)
			} else {
				b = append(b, v...)
			}
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case uint32:
			b = strconv.AppendUint(b, uint64(v), 10)
		case uint64:
			b = strconv.AppendUint(b, v, 10)
		case error:
			b = append(b, v.Error()...)
		default:
			b = append(b, "?"...)
		}
	}
	return string(b)
}
'''
open(p, 'w').write(s)
p = 'plugins/game/game.go'
s = open(p).read()
s = s.replace('\t"fmt"\n', '\t"strconv"\n')
s = s.replace('return fmt.Errorf("work_reward %d outside [1, 1000000]", c.WorkReward)', 'return errors.New("work_reward " + strconv.FormatInt(c.WorkReward, 10) + " outside [1, 1000000]")')
s = s.replace('return fmt.Errorf("xp_per_level %d must be positive", c.XPPerLevel)', 'return errors.New("xp_per_level must be positive")')
s = s.replace('return fmt.Errorf("item %q: id %d must be non-zero and price %d not negative", name, it.ID, it.Price)', 'return errors.New("item " + strconv.Quote(name) + ": bad id or price")')
s = s.replace('return fmt.Errorf("items %q and %q share id %d", other, name, it.ID)', 'return errors.New("items " + other + " and " + name + " share an id")')
s = s.replace('return fmt.Sprintf("item#%d", id)', 'return "item#" + strconv.FormatUint(uint64(id), 10)')
open(p, 'w').write(s)
EOF
}

strip() {
	sed -i 's|"-ldflags=-pluginpath="+ppath,|"-ldflags=-s -w -pluginpath="+ppath,|' cmd/hhbuild/main.go
	grep -q -- '-ldflags=-s -w' cmd/hhbuild/main.go
}

# build_coins DIR: N versions of coin v1 built by hhbuild like versionmem.
build_coins() {
	local out=$1 i d
	for i in $(seq 1 "$N"); do
		d=examples/versionmem/testdata/v$i
		mkdir -p "$d"
		sed "s/Version: \"1.0.0\"/Version: \"7.0.$i\"/" plugins/coin/v1/main.go >"$d/main.go"
		./bin/hhbuild -src "$d" -name coin -version "7.0.$i" -out "$out/built" -like ./bin/versionmem >/dev/null
	done
}

# build_floor DIR: N plugins that import nothing.
build_floor() {
	local out=$1 i d
	for i in $(seq 1 "$N"); do
		d=examples/versionmem/testdata/floor$i
		mkdir -p "$d" "$out/built"
		printf 'package main\n\n// Module is all this plugin has.\nvar Module = %d\n\nfunc main() {}\n' "$i" >"$d/main.go"
		go build -buildmode=plugin -ldflags=-pluginpath=floor$i -gcflags=-p=floor$i -o "$out/built/floor$i.so" "./$d"
	done
}

for v in "${variants[@]}"; do
	w="$root/$v"
	mkdir -p "$w/src"
	git archive HEAD | tar -x -C "$w/src"
	(
		cd "$w/src"
		case $v in
		base | floor) ;;
		strip) strip ;;
		noslog) noslog ;;
		nofmt) nofmt ;;
		*) echo "unknown variant $v" >&2; exit 2 ;;
		esac
		go build -o bin/ ./examples/versionmem ./cmd/hhbuild
		if [[ $v == floor ]]; then build_floor "$w"; else build_coins "$w"; fi
		mkdir -p "$w/so"
		for f in "$w"/built/*.so; do dd if="$f" of="$w/so/$(basename "$f")" bs=64M status=none; done
		so=("$w"/so/*.so)
		echo "## $v: .so $(du -k "${so[0]}" | cut -f1) KiB on disk"
		echo
		./bin/versionmem -md "${so[@]}"
		echo
		./bin/versionmem -md -madvise "${so[@]}" | sed -n '1,4p'
		echo
	)
done
