package shmpool_test

import (
	"errors"
	"fmt"
	"os"
	"reflect"

	"github.com/hothost/hothost/shmpool"
)

// Open creates the segment on first use and attaches it afterwards; values
// written through the pool's pointers are in shared memory.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("/dev/shm", "example-")
	defer os.RemoveAll(dir)

	type Player struct {
		Coins int64
		Level uint16
	}
	p, err := shmpool.Open[Player]("players", shmpool.Options{Dir: dir, Capacity: 1000})
	if err != nil {
		fmt.Println(err)
		return
	}
	h, v, _ := p.Alloc()
	v.Coins, v.Level = 250, 3
	p.Close()

	p, _ = shmpool.Open[Player]("players", shmpool.Options{Dir: dir})
	defer p.Close()
	v, _ = p.Get(h)
	fmt.Println(p.Info().How, v.Coins, v.Level)
	// Output: attached after clean shutdown 250 3
}

// A freed slot's old handle is refused, even after the slot is reused.
func ExamplePool_Free() {
	dir, _ := os.MkdirTemp("/dev/shm", "example-")
	defer os.RemoveAll(dir)

	p, _ := shmpool.Open[struct{ Coins int64 }]("players", shmpool.Options{Dir: dir, Capacity: 1})
	defer p.Close()
	old, _, _ := p.Alloc()
	p.Free(old)
	_, _, _ = p.Alloc() // same slot, next generation
	_, err := p.Get(old)
	fmt.Println(errors.Is(err, shmpool.ErrStaleHandle))
	// Output: true
}

// Describe refuses types that cannot live in shared memory, naming the field.
func ExampleDescribe() {
	type Item struct{ Name string }
	type Player struct {
		Coins     int64
		Inventory [4]Item
	}
	_, err := shmpool.Describe(reflect.TypeFor[Player]())
	fmt.Println(err)
	// Output: shmpool: type holds pointers: Player.Inventory[].Name: string
}

// OpenRaw reads a segment written with another layout of T, for migration.
func ExampleOpenRaw() {
	dir, _ := os.MkdirTemp("/dev/shm", "example-")
	defer os.RemoveAll(dir)

	type V1 struct{ Coins, X int64 }
	type V2 struct{ X, Coins int64 } // fields reordered
	p, _ := shmpool.Open[V1]("players", shmpool.Options{Dir: dir, Capacity: 10})
	_, v, _ := p.Alloc()
	v.Coins = 7
	p.Close()

	_, err := shmpool.Open[V2]("players", shmpool.Options{Dir: dir})
	fmt.Println(errors.Is(err, shmpool.ErrLayout))

	r, _ := shmpool.OpenRaw("players", shmpool.Options{Dir: dir})
	defer r.Close()
	b, live := r.Slot(0)
	fmt.Println(live, r.Layout().Type.Fields[0].Name, b[0])
	// Output:
	// true
	// true Coins 7
}

// A layer that journals allocations writes the slot into its journal
// inside note: a crash can then never leave a slot in use that the
// journal does not name, nor a journal entry naming a reused slot.
func ExamplePool_AllocNoted() {
	dir, _ := os.MkdirTemp("/dev/shm", "example-")
	defer os.RemoveAll(dir)

	p, _ := shmpool.Open[struct{ Coins int64 }]("players", shmpool.Options{Dir: dir, Capacity: 8})
	defer p.Close()
	var journal int64 = -1 // in real use a word in shared memory
	h, _, _ := p.AllocNoted(func(slot int) { journal = int64(slot) })
	fmt.Println(journal == int64(h.Index()))
	p.FreeNoted(h, func() { journal = -1 })
	fmt.Println(journal)
	// Output:
	// true
	// -1
}

// FreeNoted retires a journal entry at the instant the slot is free, under
// the pool's lock: no Alloc can take the slot while the entry still names it.
func ExamplePool_FreeNoted() {
	dir, _ := os.MkdirTemp("/dev/shm", "example-")
	defer os.RemoveAll(dir)

	p, _ := shmpool.Open[struct{ Coins int64 }]("players", shmpool.Options{Dir: dir, Capacity: 8})
	defer p.Close()
	h, _, _ := p.Alloc()
	deleting := true // in real use a journal word in shared memory
	err := p.FreeNoted(h, func() { deleting = false })
	fmt.Println(err, deleting, p.Len())
	// Output: <nil> false 0
}
