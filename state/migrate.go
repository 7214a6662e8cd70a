package state

import (
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/hothost/hothost/shmpool"
)

// converter turns a value of one stored layout into another by field name.
// It is compiled once per migration into a flat list of ops (merged byte
// copies where the layouts agree, scalar conversions where a field was
// widened), so converting a million records is a loop over a few ops.
//
// Automatic rules: fields match by name at every struct level; a field
// only in the new layout starts at zero; a field only in the old one is
// dropped; an integer may widen (signed to wider signed, unsigned to wider
// unsigned or to strictly wider signed), float32 may become float64 and
// complex64 complex128; an array may grow (new elements zero). Anything
// else (narrowing, int <-> float, signed -> unsigned, a shorter array, a
// changed kind) is incompatible: it needs a MigrateFunc.
type converter struct {
	ops  []convOp
	diff []string // every change, one line each
	bad  []string // the incompatible ones
}

type convOp struct {
	src, dst uint64
	n        uint64       // bytes to copy, when sk == ""
	sk, dk   shmpool.Kind // a scalar conversion
}

func newConverter(old, cur *shmpool.Type) *converter {
	c := &converter{}
	c.walk(old, cur, 0, 0, "", false)
	return c
}

func (c *converter) note(quiet bool, format string, args ...any) {
	if !quiet {
		c.diff = append(c.diff, fmt.Sprintf(format, args...))
	}
}

func (c *converter) refuse(quiet bool, format string, args ...any) {
	if !quiet {
		line := fmt.Sprintf(format, args...)
		c.diff = append(c.diff, line)
		c.bad = append(c.bad, line)
	}
}

func (c *converter) copyOp(src, dst, n uint64) {
	if n == 0 {
		return
	}
	if k := len(c.ops) - 1; k >= 0 {
		if last := &c.ops[k]; last.sk == "" && last.src+last.n == src && last.dst+last.n == dst {
			last.n += n
			return
		}
	}
	c.ops = append(c.ops, convOp{src: src, dst: dst, n: n})
}

func label(t *shmpool.Type) string {
	if t.Kind == shmpool.Array && t.Elem != nil {
		return fmt.Sprintf("[%d]%s", t.Len, label(t.Elem))
	}
	return string(t.Kind)
}

func display(path string) string {
	if path == "" {
		return "(value)"
	}
	return strings.TrimPrefix(path, ".")
}

// walk plans the conversion of old at src into cur at dst. quiet is set
// for the second and later elements of an array, whose changes the first
// element already reported.
func (c *converter) walk(old, cur *shmpool.Type, src, dst uint64, path string, quiet bool) {
	if sameType(old, cur) {
		c.copyOp(src, dst, cur.Size)
		return
	}
	switch {
	case old.Kind == shmpool.Struct && cur.Kind == shmpool.Struct:
		var common []string // names in both, in old order
		for i := range old.Fields {
			if slices.ContainsFunc(cur.Fields, func(f shmpool.Field) bool { return f.Name == old.Fields[i].Name }) {
				common = append(common, old.Fields[i].Name)
			}
		}
		rank := 0
		for j := range cur.Fields {
			nf := &cur.Fields[j]
			p := path + "." + nf.Name
			i := slices.IndexFunc(old.Fields, func(f shmpool.Field) bool { return f.Name == nf.Name })
			if i < 0 {
				c.note(quiet, "+ %-24s %-12s added (starts at zero)", display(p), label(&nf.Type))
				continue
			}
			of := &old.Fields[i]
			if common[rank] != nf.Name {
				c.note(quiet, "~ %-24s %-12s moved (offset %d -> %d)", display(p), label(&nf.Type), of.Offset, nf.Offset)
			}
			rank++
			c.walk(&of.Type, &nf.Type, src+of.Offset, dst+nf.Offset, p, quiet)
		}
		for i := range old.Fields {
			of := &old.Fields[i]
			if !slices.ContainsFunc(cur.Fields, func(f shmpool.Field) bool { return f.Name == of.Name }) {
				c.note(quiet, "- %-24s %-12s removed (value dropped)", display(path+"."+of.Name), label(&of.Type))
			}
		}
	case old.Kind == shmpool.Array && cur.Kind == shmpool.Array && old.Elem != nil && cur.Elem != nil:
		if cur.Len < old.Len {
			c.refuse(quiet, "! %-24s %s -> %s: shortened, elements would be dropped", display(path), label(old), label(cur))
			return
		}
		if cur.Len > old.Len {
			c.note(quiet, "~ %-24s %s -> %s lengthened (new elements start at zero)", display(path), label(old), label(cur))
		}
		if sameType(old.Elem, cur.Elem) {
			c.copyOp(src, dst, uint64(old.Len)*old.Elem.Size)
			return
		}
		for i := range old.Len {
			c.walk(old.Elem, cur.Elem, src+uint64(i)*old.Elem.Size, dst+uint64(i)*cur.Elem.Size, path+"[]", quiet || i > 0)
		}
	case scalar(old.Kind) && scalar(cur.Kind):
		if widens(old.Kind, cur.Kind) {
			c.note(quiet, "~ %-24s %s -> %s widened", display(path), old.Kind, cur.Kind)
			c.ops = append(c.ops, convOp{src: src, dst: dst, sk: old.Kind, dk: cur.Kind})
			return
		}
		why := "kind changed"
		if intSize(old.Kind) > 0 && intSize(cur.Kind) > 0 {
			why = "narrowed or sign changed: values may not fit"
		}
		c.refuse(quiet, "! %-24s %s -> %s: %s", display(path), old.Kind, cur.Kind, why)
	default:
		c.refuse(quiet, "! %-24s %s -> %s: kind changed", display(path), label(old), label(cur))
	}
}

// sameType reports whether two layouts are byte-for-byte the same shape.
func sameType(a, b *shmpool.Type) bool {
	if a.Kind != b.Kind || a.Size != b.Size || a.Len != b.Len || len(a.Fields) != len(b.Fields) {
		return false
	}
	if (a.Elem == nil) != (b.Elem == nil) || a.Elem != nil && !sameType(a.Elem, b.Elem) {
		return false
	}
	for i := range a.Fields {
		fa, fb := &a.Fields[i], &b.Fields[i]
		if fa.Name != fb.Name || fa.Offset != fb.Offset || !sameType(&fa.Type, &fb.Type) {
			return false
		}
	}
	return true
}

func scalar(k shmpool.Kind) bool { return k != shmpool.Array && k != shmpool.Struct }

func intSize(k shmpool.Kind) int {
	switch k {
	case shmpool.Int8, shmpool.Uint8:
		return 1
	case shmpool.Int16, shmpool.Uint16:
		return 2
	case shmpool.Int32, shmpool.Uint32:
		return 4
	case shmpool.Int64, shmpool.Uint64:
		return 8
	}
	return 0
}

func signed(k shmpool.Kind) bool {
	return k == shmpool.Int8 || k == shmpool.Int16 || k == shmpool.Int32 || k == shmpool.Int64
}

// widens reports whether every value of kind a is a value of kind b.
func widens(a, b shmpool.Kind) bool {
	if sa, sb := intSize(a), intSize(b); sa > 0 && sb > 0 {
		switch {
		case signed(a) == signed(b):
			return sb > sa
		case !signed(a) && signed(b):
			return sb > sa
		}
		return false
	}
	return a == shmpool.Float32 && b == shmpool.Float64 || a == shmpool.Complex64 && b == shmpool.Complex128
}

// apply converts src (a value of the old layout) into dst (zeroed, of the
// new one).
func (c *converter) apply(dst, src []byte) {
	for i := range c.ops {
		op := &c.ops[i]
		if op.sk == "" {
			copy(dst[op.dst:op.dst+op.n], src[op.src:op.src+op.n])
			continue
		}
		s, d := src[op.src:], dst[op.dst:]
		switch op.dk {
		case shmpool.Float64:
			ne.PutUint64(d, math.Float64bits(float64(math.Float32frombits(ne.Uint32(s)))))
		case shmpool.Complex128:
			ne.PutUint64(d, math.Float64bits(float64(math.Float32frombits(ne.Uint32(s)))))
			ne.PutUint64(d[8:], math.Float64bits(float64(math.Float32frombits(ne.Uint32(s[4:])))))
		default:
			v, _, _ := readInt(op.sk, s) // sign-extended or zero-extended by readInt
			putInt(d, intSize(op.dk), uint64(v))
		}
	}
}

func putInt(b []byte, size int, v uint64) {
	switch size {
	case 1:
		b[0] = byte(v)
	case 2:
		ne.PutUint16(b, uint16(v))
	case 4:
		ne.PutUint32(b, uint32(v))
	case 8:
		ne.PutUint64(b, v)
	}
}

// diffText renders the diff for the report and for ErrIncompatible.
func (c *converter) diffText(old, cur *shmpool.Layout) string {
	var b strings.Builder
	fo, fc := old.Fingerprint(), cur.Fingerprint()
	fmt.Fprintf(&b, "layout of %s changed (stored fingerprint %x, this build %x):", cur.Type.Name, fo[:8], fc[:8])
	if len(c.diff) == 0 {
		fmt.Fprintf(&b, "\n  no field changed (size %d -> %d, align %d -> %d)", old.Type.Size, cur.Type.Size, old.Type.Align, cur.Type.Align)
	}
	for _, l := range c.diff {
		b.WriteString("\n  ")
		b.WriteString(strings.TrimRight(l, " "))
	}
	return b.String()
}

// plan is everything needed to convert stored records into records of T.
type plan struct {
	conv    *converter
	oldVal  *shmpool.Type
	oldSize int // bytes of one stored record
	fn      MigrateFunc
	diff    string
	oldFP   [32]byte
	same    bool // no conversion at all
}

// planFor checks a stored record layout against T and compiles the
// conversion, or refuses it with ErrIncompatible and the diff.
func planFor[T any](stored *shmpool.Layout, opts Options) (*plan, error) {
	oldVal, err := recordValType(stored)
	if err != nil {
		return nil, err
	}
	cur, err := shmpool.Describe(reflect.TypeFor[T]())
	if err != nil {
		return nil, err
	}
	if stored.BigEndian != cur.BigEndian {
		return nil, fmt.Errorf("%w: stored records are %s, this machine is %s (GOARCH %s)", ErrIncompatible,
			endian(stored.BigEndian), endian(cur.BigEndian), stored.GOARCH)
	}
	ol := valLayout(stored, oldVal)
	p := &plan{conv: newConverter(oldVal, &cur.Type), oldVal: oldVal, oldSize: int(stored.Type.Size), oldFP: ol.Fingerprint()}
	p.same = p.oldFP == cur.Fingerprint()
	if !p.same {
		p.diff = p.conv.diffText(ol, cur)
	}
	p.fn = opts.Migrations[p.oldFP]
	if len(p.conv.bad) > 0 && p.fn == nil {
		return nil, fmt.Errorf("%w; register Options.Migrations[%x...] to convert it\n%s", ErrIncompatible, p.oldFP[:8], p.diff)
	}
	return p, nil
}

func endian(big bool) string {
	if big {
		return "big-endian"
	}
	return "little-endian"
}

// convert fills rec.Val from a stored record's bytes b (already checked).
func (p *plan) convert(rec []byte, valBytes []byte, newVal any) error {
	p.conv.apply(valBytes, rec[recHeader:recHeader+int(p.oldVal.Size)])
	if p.fn == nil {
		return nil
	}
	id := binary.NativeEndian.Uint64(rec[8:])
	return callMigrate(p.fn, view{t: p.oldVal, b: rec[recHeader:], id: id}, newVal)
}

func callMigrate(fn MigrateFunc, old Record, newVal any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: MigrateFunc: %v", ErrPanic, r)
		}
	}()
	return fn(old, newVal)
}

// checkRecord proves one stored record whole: its Sum matches the bytes
// after it. Segment records may carry any even Seq; snapshot records
// carry 0 (wantSeq0) so that every byte is covered.
func checkRecord(rec []byte, wantSeq0 bool) error {
	seq, sum := ne.Uint32(rec), ne.Uint32(rec[4:])
	if wantSeq0 && seq != 0 || seq&1 != 0 {
		return fmt.Errorf("sequence word %d", seq)
	}
	if got := recordSum(rec); got != sum {
		return fmt.Errorf("checksum %#08x, computed %#08x", sum, got)
	}
	return nil
}

// migrate converts the segment opts.Name (another layout of T, or fewer
// slots than opts.Capacity) into a new segment and switches to it. The
// old segment is only read: its journal is applied on the fly when its
// owner died, so kill -9 at any point of a migration leaves it usable.
func migrate[T any](opts Options, rep *OpenReport) error {
	raw, err := shmpool.OpenRaw(opts.Name, shmpool.Options{Dir: opts.ShmDir})
	if err != nil {
		return err
	}
	defer raw.Close()
	p, err := planFor[T](raw.Layout(), opts)
	if err != nil {
		return fmt.Errorf("state: migrate %s: %w", raw.Info().Path, err)
	}
	rep.Diff = p.diff
	rep.Reason = "stored layout differs from this build's T"
	if p.fn != nil {
		rep.Reason += fmt.Sprintf(" (MigrateFunc for %x... applied)", p.oldFP[:8])
	}
	g, err := decodeAux(raw.Aux(), p.oldSize, raw.Cap())
	if err != nil {
		return fmt.Errorf("state: migrate %s: %w", raw.Info().Path, err)
	}
	// The old journals, applied logically: a slot with an unfinished update
	// or transaction is read from its undo copy, a half-created one skipped.
	undo, timerWords := txUndo(raw.Aux(), g, p.oldSize)
	created := map[int]bool{}
	aux := raw.Aux()
	for i := range g.lanes {
		off := g.journal + i*g.stride
		w := atomic.LoadUint64((*uint64)(unsafe.Pointer(&aux[off])))
		switch w >> 32 {
		case journalUpdate:
			undo[int(uint32(w))] = aux[off+8 : off+8+p.oldSize]
		case journalCreate:
			created[int(uint32(w))] = true
		}
	}
	crashed := raw.Info().How == shmpool.AttachedAfterCrash || len(undo)+len(created)+len(timerWords) > 0
	var rr RecoveryReport
	capacity := max(raw.Cap(), opts.Capacity)
	log := opts.Logger
	err = build[T](opts, capacity, timerSlots(opts, capacity, g.timers), func(b *Store[T]) error {
		n := 0
		for i := range raw.Cap() {
			rec, live := raw.Slot(i)
			if !live {
				continue
			}
			if created[i] {
				rr.Repaired++
				continue
			}
			if u, ok := undo[i]; ok {
				rec = u
				rr.Repaired++
			}
			rr.Checked++
			if err := checkRecord(rec, false); err != nil {
				if crashed && allZero(rec) {
					rr.Repaired++
					continue
				}
				id := ne.Uint64(rec[8:])
				rr.Lost++
				if len(rr.LostIDs) < maxLostIDs {
					rr.LostIDs = append(rr.LostIDs, id)
				}
				log.Error("state: migration skipped a record that fails its check", "slot", i, "player", id, "cause", err)
				continue
			}
			if err := b.putConverted(rec, p); err != nil {
				return err
			}
			if n++; testHookMigrated != nil {
				testHookMigrated(n)
			}
		}
		rep.TimersDropped += b.copyTimers(aux, g, timerWords)
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: migrate %s: %w", raw.Info().Path, err)
	}
	if crashed {
		rep.Recovery = &rr
	}
	log.Info("state: migrated", "from", raw.Info().Path, "players", rr.Checked-rr.Lost, "diff", p.diff)
	return nil
}

// testHookMigrated, when set (tests only), is called after each record a
// migration copies: the kill-during-migration test stops there.
var testHookMigrated func(n int)
