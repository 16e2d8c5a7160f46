package copybench

import "imapcopy.dev/pkg/imaptest"

// Spec says what mailbox to generate. The same Spec always gives the same mailbox, byte
// for byte.
type Spec struct {
	Seed  uint64
	Count int   // messages
	Bytes int64 // approximate total size of the messages
}

// DefaultSpec is the benchmark's default mailbox: 5,000 messages, about 300 MB.
func DefaultSpec() Spec { return Spec{Seed: 1, Count: 5000, Bytes: 300 << 20} }

// SmallSpec is the mailbox of BENCH_SIZE=small: the whole benchmark in about a minute.
func SmallSpec() Spec { return Spec{Seed: 1, Count: 500, Bytes: 30 << 20} }

// Rerun100kSpec is the mailbox of BENCH_SIZE=rerun100k, for reruns at 100,000 messages
// (issue 12, goal 5): the generator's size mix makes it about 1.8 GB.
func Rerun100kSpec() Spec { return Spec{Seed: 1, Count: 100_000, Bytes: 300 << 20} }

// Generate plans the mailbox of spec with imaptest's generator (imaptest.PlanSized):
// message bytes are rendered on demand (Plan.Render), so that a 300 MB mailbox never
// sits in memory.
func Generate(spec Spec) (*imaptest.Plan, error) {
	return imaptest.PlanSized(spec.Seed, spec.Count, spec.Bytes)
}
