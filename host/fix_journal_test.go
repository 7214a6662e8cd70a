package host

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestJournalTornTail: records appended and synced are read back; a last
// line cut short by a crash (half a line, or a whole line with a wrong
// checksum) is dropped and truncated away by the next writer; damage
// before the last line refuses the run with the line's number.
func TestJournalTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.log")
	j, err := openJournal(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for id := uint64(1); id <= 20; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := j.write(runRecord{Op: opIntent, ID: id, Before: []byte{1, 2}, After: []byte{3, 4}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, size, err := readJournal(path)
	if err != nil || len(recs) != 20 || size != int64(len(whole)) {
		t.Fatalf("read %d records, size %d of %d: %v", len(recs), size, len(whole), err)
	}
	ids := make([]uint64, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	slices.Sort(ids)
	if ids[0] != 1 || ids[19] != 20 || slices.Compact(ids)[19] != 20 || string(recs[0].After) != "\x03\x04" {
		t.Fatalf("records %v %+v", ids, recs[0])
	}

	last := strings.LastIndexByte(string(whole[:len(whole)-1]), '\n') + 1
	for name, tail := range map[string][]byte{
		"half a line":    whole[last : len(whole)-7],
		"wrong checksum": append([]byte("00000000"), whole[last+8:]...),
	} {
		t.Run(name, func(t *testing.T) {
			torn := filepath.Join(t.TempDir(), "run.log")
			if err := os.WriteFile(torn, append(append([]byte(nil), whole[:last]...), tail...), 0o600); err != nil {
				t.Fatal(err)
			}
			recs, size, err := readJournal(torn)
			if err != nil || len(recs) != 19 || size != int64(last) {
				t.Fatalf("torn tail: %d records, size %d (want 19, %d): %v", len(recs), size, last, err)
			}
			j, err := openJournal(torn, size)
			if err == nil {
				err = j.write(runRecord{Op: opDone, ID: 7})
			}
			if err == nil {
				err = j.close()
			}
			if recs, _, err2 := readJournal(torn); err != nil || err2 != nil || len(recs) != 20 || recs[19].Op != opDone {
				t.Fatalf("appending after a torn tail: %d records: %v %v", len(recs), err, err2)
			}
		})
	}

	damaged := filepath.Join(t.TempDir(), "run.log")
	bad := append([]byte(nil), whole...)
	bad[20] ^= 1 // inside the first line
	if err := os.WriteFile(damaged, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readJournal(damaged); !errors.Is(err, errRunDamaged) || !strings.Contains(err.Error(), "line 1:") {
		t.Fatalf("damage in the first line: %v", err)
	}
}

type testState struct {
	Coins int64
	Ratio float64
	Name  [8]byte
	Raw   [2]byte
	Inv   [2]struct{ Item, Count uint32 }
}

// TestDiffValues: leaf fields by Go path, a byte array holding text as one
// string, other byte arrays element by element, a NaN equal to itself.
func TestDiffValues(t *testing.T) {
	a := testState{Coins: 52000, Ratio: math.NaN(), Raw: [2]byte{0, 7}}
	copy(a.Name[:], "Ada")
	b := a
	b.Coins, b.Raw[1], b.Inv[1].Count = 5200, 9, 3
	copy(b.Name[:], "Bob")
	got := fmt.Sprint(diffValues(&a, &b))
	want := `[Coins: 52000 -> 5200 Name: "Ada" -> "Bob" Raw[1]: 7 -> 9 Inv[1].Count: 0 -> 3]`
	if got != want {
		t.Fatalf("diff\n got %s\nwant %s", got, want)
	}
	if d := diffValues(&a, &a); len(d) != 0 {
		t.Fatalf("a value differs from itself: %v", d)
	}
	totals := fieldTotals{}
	totals.add(diffValues(&a, &b))
	totals.add([]fieldChange{{Field: "Coins", Before: int64(100), After: int64(10)}})
	if got := fmt.Sprint(totals.list()[0]); got != "Coins: 2 players, total 52100 -> 5210" {
		t.Fatalf("totals %s", got)
	}
}

// TestUndoFields: undo puts back the fields the fix changed and keeps the
// others' later changes; a fixed field changed again is a conflict, put
// back only when forced; a value already back is reported as such.
func TestUndoFields(t *testing.T) {
	before := testState{Coins: 52000}
	after := before
	after.Coins = 5200
	cur := after
	cur.Inv[0].Count = 4 // a purchase since the fix
	if got, conflicts := undoFields(&cur, &before, &after, false); got != undoRestore || conflicts != nil || cur.Coins != 52000 || cur.Inv[0].Count != 4 {
		t.Fatalf("restore: %d %v %+v", got, conflicts, cur)
	}
	if got, _ := undoFields(&cur, &before, &after, false); got != undoAlready {
		t.Fatalf("a second undo: %d, want already", got)
	}
	cur.Coins = 5210 // a reward since the fix
	got, conflicts := undoFields(&cur, &before, &after, false)
	if got != undoConflict || fmt.Sprint(conflicts) != "[Coins: 5200 -> 5210]" || cur.Coins != 5210 {
		t.Fatalf("conflict: %d %v %+v", got, conflicts, cur)
	}
	if got, _ := undoFields(&cur, &before, &after, true); got != undoRestore || cur.Coins != 52000 {
		t.Fatalf("forced: %d %+v", got, cur)
	}
}

func TestParseIDs(t *testing.T) {
	ids, err := parseIDs("9, 1,2,5-7,2")
	if err != nil || fmt.Sprint(ids) != "[1 2 5 6 7 9]" {
		t.Fatalf("%v %v", ids, err)
	}
	for _, bad := range []string{"", "0", "a", "7-5", "1-", "1-20000001", "18446744073709551615-1"} {
		if _, err := parseIDs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
