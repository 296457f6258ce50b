package idfile

import "slices"

// rowPipeBatch is how many rows a worker parses at a time: enough that
// handing a batch over costs little next to parsing it, few enough that a
// stop wastes little work.
const rowPipeBatch = 256

// pipeRow is one row of a batch: what the scanner found, and once the
// batch is done, what parse made of it.
type pipeRow[T any] struct {
	line   int
	reason string
	v      []string
	raw    []byte
	t      T
}

type pipeBatch[T any] struct {
	rows []pipeRow[T]
	done chan struct{}
}

// rowPipe parses rows on worker goroutines and settles them in the order
// they were added, on the goroutine that adds them. At most 2·workers
// batches are in flight; adding a row to a full pipe first settles the
// oldest batch.
type rowPipe[T any] struct {
	parse   func(line int, v []string) (T, string)
	settle  func(line int, t T, reason string, raw []byte) error
	jobs    chan *pipeBatch[T]
	queue   []*pipeBatch[T] // in flight, oldest first
	cur     *pipeBatch[T]
	max     int
	err     error // the error settle returned; the pipe takes no more rows
	stopped bool
}

func newRowPipe[T any](workers int, parse func(int, []string) (T, string), settle func(int, T, string, []byte) error) *rowPipe[T] {
	p := &rowPipe[T]{parse: parse, settle: settle, max: 2 * workers, jobs: make(chan *pipeBatch[T], 2*workers)}
	for range workers {
		go func() {
			for b := range p.jobs {
				for i := range b.rows {
					r := &b.rows[i]
					if r.reason == "" {
						r.t, r.reason = parse(r.line, r.v)
					}
				}
				close(b.done)
			}
		}()
	}
	return p
}

// add queues one row: its values v and raw bytes are copied, since the
// scanner reuses them.
func (p *rowPipe[T]) add(line int, reason string, v []string, raw []byte) error {
	if p.cur == nil {
		p.cur = &pipeBatch[T]{rows: make([]pipeRow[T], 0, rowPipeBatch), done: make(chan struct{})}
	}
	r := pipeRow[T]{line: line, reason: reason, raw: slices.Clone(raw)}
	if reason == "" {
		r.v = slices.Clone(v)
	}
	p.cur.rows = append(p.cur.rows, r)
	if len(p.cur.rows) < rowPipeBatch {
		return nil
	}
	return p.send()
}

// send hands the current batch to the workers, first settling the oldest
// batch when max are in flight.
func (p *rowPipe[T]) send() error {
	if len(p.queue) == p.max {
		if err := p.settleOldest(); err != nil {
			return err
		}
	}
	b := p.cur
	p.cur = nil
	p.queue = append(p.queue, b)
	p.jobs <- b // never blocks: the channel holds max batches
	return nil
}

func (p *rowPipe[T]) settleOldest() error {
	b := p.queue[0]
	p.queue = p.queue[1:]
	<-b.done
	for i := range b.rows {
		r := &b.rows[i]
		if err := p.settle(r.line, r.t, r.reason, r.raw); err != nil {
			p.err = err
			return err
		}
	}
	return nil
}

// flush settles every row added.
func (p *rowPipe[T]) flush() error {
	if p.cur != nil && len(p.cur.rows) > 0 {
		if err := p.send(); err != nil {
			return err
		}
	}
	for len(p.queue) > 0 {
		if err := p.settleOldest(); err != nil {
			return err
		}
	}
	return nil
}

// close stops the workers once they have parsed what is queued; rows not
// settled are dropped.
func (p *rowPipe[T]) close() {
	if !p.stopped {
		p.stopped = true
		close(p.jobs)
	}
}
