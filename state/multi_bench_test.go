package state

import (
	"fmt"
	"testing"
)

// BenchmarkRunMultiPlayers is a transaction over n players (2, 4, 8: the
// most one holds), each player's value changed, against a Run of one
// player doing the same change, interleaved in blocks (interleave) on the
// same 1024 players: x-run is the ratio of their times per transaction,
// x-run-per-player that ratio over n. The players of a transaction are
// spread over the lanes, so each takes n lane locks in order.
func BenchmarkRunMultiPlayers(b *testing.B) {
	for _, n := range []int{2, 4, 8} {
		b.Run(fmt.Sprintf("players=%d", n), func(b *testing.B) {
			s := benchStore(b)
			var g Guard
			ids := make([]uint64, n)
			each := func(vs []*Player) error {
				for _, v := range vs {
					bump(v)
				}
				return nil
			}
			kinds := []func(i int) error{
				func(i int) error { return s.Run(uint64(i%players), &g, bump) },
				func(i int) error {
					for k := range ids {
						ids[k] = uint64((i*n + k*(players/n+1)) % players) // distinct: k*(players/n+1) < players
					}
					return s.RunMulti(ids, &g, each)
				},
			}
			took := interleave(b, kinds)
			ratio := float64(took[1]) / float64(took[0])
			b.ReportMetric(float64(took[0].Nanoseconds())/float64(b.N), "run1-ns/op")
			b.ReportMetric(ratio, "x-run")
			b.ReportMetric(ratio/float64(n), "x-run-per-player")
		})
	}
}
