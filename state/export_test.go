package state

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// exportJSON exports player id of s and returns the document as JSON, the
// way the admin API hands it out.
func exportJSON[T any](t *testing.T, s *Store[T], id uint64) []byte {
	t.Helper()
	doc, err := s.Export(id)
	if err != nil {
		t.Fatalf("export %d: %v", id, err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("marshal export of %d: %v", id, err)
	}
	return b
}

func importJSON[T any](s *Store[T], b []byte, id uint64, replace bool) (*ImportReport, error) {
	doc, err := DecodePlayerDoc(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return s.Import(doc, id, replace)
}

func TestExportImportRoundTrip(t *testing.T) {
	src, _ := mustOpen[Player](t, testOptions(t, 16))
	defer src.Close()
	src.Ensure(7)
	src.Update(7, func(p *Player) error {
		for range 5 {
			p.step(7)
		}
		copy(p.Name[:], "Ada")
		p.Coins = math.MinInt64
		return nil
	})
	b := exportJSON(t, src, 7)
	for _, want := range []string{`"format":"hothost-player/1"`, `"id":7`, `"Name":"Ada"`, `"Coins":-9223372036854775808`, `"fingerprint":"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Fatalf("export lacks %s:\n%s", want, b)
		}
	}
	dst, _ := mustOpen[Player](t, Options{Name: "other", ShmDir: shmDir(t), Capacity: 16, Logger: quietLogger()})
	defer dst.Close()
	rep, err := importJSON(dst, b, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ID != 7 || !rep.Created || len(rep.Changes) != 0 {
		t.Fatalf("import report %+v, want player 7 created with no layout change", rep)
	}
	want, _ := src.Get(7)
	if got, err := dst.Get(7); err != nil || got != want {
		t.Fatalf("imported %+v %v, want %+v", got, err, want)
	}
	// Under another id, the same value.
	if _, err := importJSON(dst, b, 9, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := dst.Get(9); got != want {
		t.Fatalf("imported as 9: %+v, want %+v", got, want)
	}
}

// Odd has the kinds the example game lacks.
type Odd struct {
	F32   float32
	F64   float64
	C64   complex64
	C128  complex128
	On    bool
	Raw   [4]byte // not text: stays numbers
	Small int8
	Big   uint64
}

func TestExportImportOddKinds(t *testing.T) {
	s, _ := mustOpen[Odd](t, testOptions(t, 4))
	defer s.Close()
	want := Odd{F32: float32(math.Inf(-1)), F64: math.Inf(1), C64: complex(1.5, -2), C128: complex(math.Pi, 1e300), On: true,
		Raw: [4]byte{0, 1, 0xff, 0}, Small: -128, Big: math.MaxUint64}
	s.Ensure(1)
	s.Update(1, func(o *Odd) error { *o = want; return nil })
	b := exportJSON(t, s, 1)
	for _, w := range []string{`"F32":"-Inf"`, `"F64":"+Inf"`, `"Raw":[0,1,255,0]`, `"Big":18446744073709551615`} {
		if !bytes.Contains(b, []byte(w)) {
			t.Fatalf("export lacks %s:\n%s", w, b)
		}
	}
	if _, err := importJSON(s, b, 2, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(2); got != want {
		t.Fatalf("round trip: %+v, want %+v", got, want)
	}
	// NaN is not equal to itself: its own check.
	s.Update(1, func(o *Odd) error { o.F64 = math.NaN(); return nil })
	if _, err := importJSON(s, exportJSON(t, s, 1), 2, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(2); !math.IsNaN(got.F64) {
		t.Fatalf("NaN round trip: %v", got.F64)
	}
}

func TestImportMigratesByName(t *testing.T) {
	opts := testOptions(t, 16)
	seedV1(t, opts, 5)
	old, _ := mustOpen[PlayerV1](t, opts)
	b := exportJSON(t, old, 5)
	old.Close()

	s, _ := mustOpen[PlayerV2](t, Options{Name: "v2", ShmDir: shmDir(t), Capacity: 16, Logger: quietLogger()})
	defer s.Close()
	rep, err := importJSON(s, b, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	changes := strings.Join(rep.Changes, "\n")
	for _, want := range []string{"+ Gems int64 added", "Coins int32 -> int64 widened", "- Old uint32 removed", "Inv [4]struct -> [8]struct lengthened"} {
		if !strings.Contains(changes, want) {
			t.Errorf("changes lack %q:\n%s", want, changes)
		}
	}
	o, p := v1Value(5), mustGet(t, s, 5)
	if p.Gems != 0 || p.Coins != int64(o.Coins) || p.Level != uint32(o.Level) || p.Pos != (PosV2{o.Pos.X, o.Pos.Y, 0}) ||
		string(p.Name[:8]) != string(o.Name[:]) || p.Inv[3] != (ItemV2{Count: uint32(o.Inv[3].Count), ID: o.Inv[3].ID}) || p.Inv[4] != (ItemV2{}) {
		t.Fatalf("imported %+v from %+v", p, o)
	}
}

func mustGet[T any](t *testing.T, s *Store[T], id uint64) T {
	t.Helper()
	v, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// v1Doc is player 5 of a PlayerV1 store as JSON, decoded into a map that
// a test edits before importing it.
func v1Doc(t *testing.T) map[string]any {
	t.Helper()
	opts := testOptions(t, 16)
	seedV1(t, opts, 5)
	s, _ := mustOpen[PlayerV1](t, opts)
	defer s.Close()
	var m map[string]any
	if err := json.Unmarshal(exportJSON(t, s, 5), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestImportRefusesIncompatibleLayouts(t *testing.T) {
	b := marshal(t, v1Doc(t))
	t.Run("narrowed", func(t *testing.T) {
		s, _ := mustOpen[PlayerBad](t, testOptions(t, 4))
		defer s.Close()
		_, err := importJSON(s, b, 0, false)
		if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "Coins int32 -> int16: narrowed") {
			t.Fatalf("import into a narrower Coins: %v, want ErrIncompatible naming Coins", err)
		}
		if s.Len() != 0 {
			t.Fatalf("a refused import left %d players", s.Len())
		}
	})
	t.Run("kind changed", func(t *testing.T) {
		s, _ := mustOpen[PlayerFloat](t, testOptions(t, 4))
		defer s.Close()
		if _, err := importJSON(s, b, 0, false); !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "Coins int32 -> float64: kind changed") {
			t.Fatalf("import into a float Coins: %v, want ErrIncompatible naming Coins", err)
		}
	})
	t.Run("shortened", func(t *testing.T) {
		type Short struct {
			Coins int32
			Name  [4]byte
		}
		s, _ := mustOpen[Short](t, testOptions(t, 4))
		defer s.Close()
		if _, err := importJSON(s, b, 0, false); !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "Name [8]uint8 -> [4]uint8: shortened") {
			t.Fatalf("import into a shorter Name: %v, want ErrIncompatible naming Name", err)
		}
	})
	t.Run("migrate func", func(t *testing.T) {
		fp, _ := Fingerprint[PlayerV1]()
		opts := testOptions(t, 4)
		opts.Migrations = map[[32]byte]MigrateFunc{fp: func(old Record, v any) error {
			c, _ := old.Int("Coins")
			v.(*PlayerBad).Coins = int16(c / 10)
			return nil
		}}
		s, _ := mustOpen[PlayerBad](t, opts)
		defer s.Close()
		rep, err := importJSON(s, b, 0, false)
		if err != nil || !rep.MigrateFunc {
			t.Fatalf("import with a MigrateFunc: %+v %v", rep, err)
		}
		if p := mustGet(t, s, 5); int32(p.Coins) != v1Value(5).Coins/10 || p.Name != v1Value(5).Name {
			t.Fatalf("migrated %+v", p)
		}
	})
}

func TestImportRefusesBadDocuments(t *testing.T) {
	s, _ := mustOpen[PlayerV1](t, testOptions(t, 16))
	defer s.Close()
	s.Ensure(5)
	before := PlayerV1{Coins: 42}
	s.Update(5, func(p *PlayerV1) error { *p = before; return nil })

	edit := func(fn func(doc, st map[string]any)) []byte {
		doc := v1Doc(t)
		fn(doc, doc["state"].(map[string]any))
		return marshal(t, doc)
	}
	good := edit(func(doc, st map[string]any) {})
	for _, c := range []struct {
		name string
		doc  []byte
		want string
	}{
		{"truncated", good[:len(good)/2], "malformed JSON"},
		{"not json", []byte("coins=5"), "malformed JSON at byte 1"},
		{"trailing", append(append([]byte{}, good...), `{}`...), "data after the document"},
		{"unknown key", edit(func(doc, st map[string]any) { doc["extra"] = 1 }), `unknown field "extra"`},
		{"format", edit(func(doc, st map[string]any) { doc["format"] = "csv" }), `format "csv"`},
		{"no state", edit(func(doc, st map[string]any) { delete(doc, "state") }), "no state"},
		{"string too long", edit(func(doc, st map[string]any) { st["Name"] = "Ada Lovelace" }), "Name: a string of 12 bytes does not fit in [8]byte"},
		{"out of range", edit(func(doc, st map[string]any) { st["Level"] = 70000 }), "Level: 70000 does not fit in uint16"},
		{"negative unsigned", edit(func(doc, st map[string]any) { st["Inv"].([]any)[2].(map[string]any)["Count"] = -1 }), "Inv[2].Count: -1 does not fit in uint16"},
		{"fraction", edit(func(doc, st map[string]any) { st["Coins"] = 1.5 }), "Coins: 1.5 is not an integer"},
		{"string for int", edit(func(doc, st map[string]any) { st["Coins"] = "12" }), `Coins: want an integer, got the string "12"`},
		{"missing", edit(func(doc, st map[string]any) { delete(st, "Pos") }), "Pos: missing"},
		{"unknown field", edit(func(doc, st map[string]any) { st["Gold"] = 1 }), "Gold: no such field"},
		{"short array", edit(func(doc, st map[string]any) { st["Inv"] = st["Inv"].([]any)[:3] }), "Inv: 3 elements, the document's layout says 4"},
		{"layout edited", edit(func(doc, st map[string]any) {
			doc["layout"].(map[string]any)["type"].(map[string]any)["fields"].([]any)[0].(map[string]any)["name"] = "Gold"
		}), "does not match the layout"},
		{"layout impossible", edit(func(doc, st map[string]any) {
			doc["layout"].(map[string]any)["type"].(map[string]any)["fields"].([]any)[0].(map[string]any)["offset"] = 1 << 40
		}), "outside struct"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := importJSON(s, c.doc, 5, true)
			if !errors.Is(err, ErrBadDocument) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("import: %v, want ErrBadDocument saying %q", err, c.want)
			}
			if got := mustGet(t, s, 5); got != before || s.Len() != 1 {
				t.Fatalf("a refused import changed the store: %+v, %d players", got, s.Len())
			}
		})
	}
}

func TestImportExistingNeedsReplace(t *testing.T) {
	b := marshal(t, v1Doc(t))
	s, _ := mustOpen[PlayerV1](t, testOptions(t, 16))
	defer s.Close()
	s.Ensure(5)
	s.Update(5, func(p *PlayerV1) error { p.Coins = 1; return nil })
	if _, err := importJSON(s, b, 0, false); !errors.Is(err, ErrExists) {
		t.Fatalf("import over player 5: %v, want ErrExists", err)
	}
	if p := mustGet(t, s, 5); p.Coins != 1 {
		t.Fatalf("a refused import changed player 5: %+v", p)
	}
	rep, err := importJSON(s, b, 0, true)
	if err != nil || rep.Created {
		t.Fatalf("import with replace: %+v %v", rep, err)
	}
	if p := mustGet(t, s, 5); p != v1Value(5) {
		t.Fatalf("replaced player 5 = %+v, want %+v", p, v1Value(5))
	}
}

// The import kill storm re-executes the test binary (before TestMain, from
// init) as a child that imports players in a tight loop, creating and
// replacing them; the parent kills it at random instants and checks every
// player whole and every acknowledged import there.
const importChildEnv = "HOTHOST_STATE_IMPORT_CHILD"

func init() {
	if dir := os.Getenv(importChildEnv); dir != "" {
		if err := childImports(dir); err != nil {
			fmt.Fprintln(os.Stderr, "import child:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
}

// childImports imports consistent Player values (Player.step) as players
// 1..stormPlayers (replacing) and churn players (deleted, then created by
// the import), reporting "id A" for each acknowledged one.
func childImports(dir string) error {
	s, _, err := Open[Player](childOptions(dir))
	if err != nil {
		return err
	}
	fp := s.layout.Fingerprint()
	doc := &PlayerDoc{Format: PlayerDocFormat, Layout: s.layout, Fingerprint: fmt.Sprintf("%x", fp)}
	w := bufio.NewWriterSize(os.Stdout, 4096)
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 9))
	for n := int64(0); ; n++ {
		id := 1 + rng.Uint64N(stormPlayers)
		if n%4 == 0 {
			id = churnBase + rng.Uint64N(churnPlayers)
			if err := s.Delete(id); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		p := Player{A: n}
		p.step(id)
		doc.State = decodeValue(&s.layout.Type, unsafe.Slice((*byte)(unsafe.Pointer(&p)), unsafe.Sizeof(p)), 0, true)
		if _, err := s.Import(doc, id, true); err != nil {
			return err
		}
		fmt.Fprintf(w, "%d %d\n", id, p.A)
	}
}

func TestImportKillStorm(t *testing.T) {
	kills := 12
	if testing.Short() {
		kills = 4
	}
	dir := shmDir(t)
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 2))
	imported := map[uint64]bool{} // every player ever acknowledged
	total := 0
	for k := range kills {
		acked := map[uint64]int64{} // this child's: A restarts with each child
		killChildAfter(t, importChildEnv+"="+dir, 1+rng.IntN(2000), func(id uint64, a int64) {
			acked[id] = max(acked[id], a)
			imported[id] = true
			total++
		})
		s, rep := mustOpen[Player](t, childOptions(dir))
		if rep.Recovery != nil && rep.Recovery.Lost != 0 {
			t.Fatalf("kill %d: lost players: %v", k, rep)
		}
		s.Each(func(id uint64, p *Player) bool {
			if msg := p.consistent(id); msg != "" || p.A == 0 && p.Check == 0 {
				t.Fatalf("kill %d: player %d is torn or empty (%q): %+v", k, id, msg, p)
			}
			return true
		})
		for id := range imported {
			if id >= churnBase { // deleted before each import: may be gone
				continue
			}
			p, err := s.Get(id)
			if err != nil {
				t.Fatalf("kill %d: acknowledged import of player %d: %v", k, id, err)
			}
			if p.A < acked[id] {
				t.Fatalf("kill %d: player %d has A=%d, but A=%d was acknowledged", k, id, p.A, acked[id])
			}
		}
		s.Close()
	}
	if total == 0 {
		t.Fatal("no import was ever acknowledged")
	}
	t.Logf("%d kills, %d acknowledged imports", kills, total)
}

// killChildAfter runs this test binary as a child with env set, passes each
// "id value" line it reports to fn, kills it with SIGKILL after target
// lines (or at its end), passes on what it had flushed before it died, and
// checks that the kill is what ended it.
func killChildAfter(t *testing.T, env string, target int, fn func(id uint64, v int64)) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	read := func() bool {
		line, err := r.ReadString('\n')
		f := strings.Fields(line)
		if err != nil || len(f) != 2 { // EOF, or a line cut by the kill: not acknowledged
			return false
		}
		id, _ := strconv.ParseUint(f[0], 10, 64)
		v, _ := strconv.ParseInt(f[1], 10, 64)
		fn(id, v)
		return true
	}
	for n := 0; n < target && read(); n++ {
	}
	cmd.Process.Signal(syscall.SIGKILL)
	for read() {
	}
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL", err)
	}
}
