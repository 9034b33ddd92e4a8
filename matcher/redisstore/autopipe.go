package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// autoPipe sends the function calls made at once on one server (or
// Sentinel's primary) as pipelines: up to maxLeaders batches in flight,
// each on one connection, each one write and one read of Redis's replies.
// When writes wait for replicas, a batch's calls are followed by one WAIT
// (WAITAOF) on the same connection, which covers every write sent before
// it there: each call of the batch gets its verdict, as from a WAIT of
// its own. A call that finds fewer batches in flight leads one:
// it sends what is queued (its own call among them) itself; the others
// queue, and each is woken when its reply is in, or when a leader that
// finished hands it the queue to send next. So no goroutine runs beside
// the callers, and a call costs the process and Redis a share of one
// write and one read instead of their own.
//
// Each command keeps its own reply or error, as on a connection of its
// own: a pipeline is no transaction, Redis runs each call as it would
// alone. A connection lost mid-batch fails the calls whose replies were
// not read, as it fails a call alone (the call may have run); on an error
// go-redis does not retry (a connection reset), it sets that error on
// every command of the pipeline, even those whose replies were read: a
// call that was applied then fails as unavailable, which a caller's retry
// makes harmless, as after a reply lost on the way. A batch that fails
// before anything is sent (no connection: dial, handshake or pool
// timeout) fails every call of it with that error.
//
// A call whose deadline (Options.Timeout from when it was made, or its
// context's deadline when sooner) has passed when its batch is sent is
// not sent: it fails, with its context's error or a timeout. The batch is
// bounded by the latest deadline of the calls it sends, so one call's
// short deadline does not fail the others sent with it, but never past
// Options.Timeout from when its oldest call was made: no call returns
// later than Options.Timeout after it was made (the budget a webhook's
// answer is promised within). A call with a shorter deadline of its own
// (or whose context ends after it was sent) may return after that
// deadline, with its real reply, within the same bound; a fresh call sent
// with an older one may fail before its own deadline, when Redis has not
// answered by the older one's.
type autoPipe struct {
	c       *redis.Client
	timeout time.Duration
	// waitCmd and waited, when writes wait for replicas, make the WAIT
	// that follows a batch and read its verdict (Store's).
	waitCmd func(context.Context) *redis.Cmd
	waited  func(*redis.Cmd) error

	mu      sync.Mutex
	queue   []*pipeCall
	leaders int // batches in flight; the queue is empty while fewer than maxLeaders
}

// maxLeaders bounds the batches in flight (connections in use), and
// maxBatch the calls one batch sends.
const (
	maxLeaders = 4
	maxBatch   = 128
)

// pipeCall is one queued call: lead tells a waiting caller that its reply
// is in (false) or that it leads batch, the next one (true).
type pipeCall struct {
	ctx      context.Context
	cmd      *redis.Cmd
	made     time.Time
	deadline time.Time
	werr     error // the WAIT's verdict, when writes wait
	lead     chan bool
	batch    []*pipeCall
}

var pipeCalls = sync.Pool{New: func() any { return &pipeCall{lead: make(chan bool, 1)} }}

// do runs cmd, as part of a batch, and returns once its reply or error is
// in cmd, with the verdict of the WAIT that followed it when writes wait
// for replicas (see Store.write).
func (p *autoPipe) do(ctx context.Context, cmd *redis.Cmd) (werr error) {
	c := pipeCalls.Get().(*pipeCall)
	c.ctx, c.cmd, c.made = ctx, cmd, time.Now()
	c.deadline = c.made.Add(p.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(c.deadline) {
		c.deadline = d
	}
	p.mu.Lock()
	p.queue = append(p.queue, c)
	if p.leaders < maxLeaders {
		p.leaders++
		batch := p.take()
		p.mu.Unlock()
		p.lead(batch)
	} else {
		p.mu.Unlock()
		if <-c.lead {
			p.lead(c.batch)
		}
	}
	werr = c.werr
	c.ctx, c.cmd, c.batch, c.werr = nil, nil, nil, nil
	pipeCalls.Put(c)
	return werr
}

// take removes the head of the queue, a batch, with mu held; its first
// call is the one to lead it.
func (p *autoPipe) take() []*pipeCall {
	n := min(len(p.queue), maxBatch)
	batch := make([]*pipeCall, n)
	copy(batch, p.queue)
	rest := copy(p.queue, p.queue[n:])
	clear(p.queue[rest:]) // no call stays reachable past the queue's length
	p.queue = p.queue[:rest]
	return batch
}

// lead, called by the first caller of batch, which counts among the
// leaders, sends the batch, then hands the next batch of the queue to its
// first caller or stops leading, and wakes the batch's other callers:
// even when sending panics (a client hook's), so no caller waits forever.
// The batch's calls without a reply then fail, and the panic goes on.
func (p *autoPipe) lead(batch []*pipeCall) {
	defer p.handOff(batch)
	defer func() {
		if r := recover(); r != nil {
			failUnanswered(batch, fmt.Errorf("redis: sending a batch of calls panicked: %v", r))
			panic(r)
		}
	}()
	p.send(batch)
}

// handOff is what lead does once batch is sent.
func (p *autoPipe) handOff(batch []*pipeCall) {
	p.mu.Lock()
	var next []*pipeCall
	if len(p.queue) > 0 {
		next = p.take()
	} else {
		p.leaders--
	}
	p.mu.Unlock()
	if next != nil {
		next[0].batch = next
		next[0].lead <- true
	}
	for _, c := range batch[1:] {
		c.lead <- false
	}
}

// errQueuedPastDeadline fails a call whose deadline passed while it was
// queued: a timeout, as if it had been sent.
var errQueuedPastDeadline = fmt.Errorf("redis: call queued past its deadline: %w", context.DeadlineExceeded)

// send runs the batch's calls, as one pipeline, each holding its reply or
// error.
func (p *autoPipe) send(batch []*pipeCall) {
	now := time.Now()
	var deadline, oldest time.Time
	cmds := make([]redis.Cmder, 0, len(batch))
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.cmd.SetErr(err)
			continue
		}
		if !c.deadline.After(now) {
			c.cmd.SetErr(errQueuedPastDeadline)
			continue
		}
		if c.deadline.After(deadline) {
			deadline = c.deadline
		}
		if len(cmds) == 0 || c.made.Before(oldest) {
			oldest = c.made
		}
		cmds = append(cmds, c.cmd)
	}
	if len(cmds) == 0 {
		return
	}
	if d := oldest.Add(p.timeout); d.Before(deadline) {
		deadline = d
	}
	if p.waitCmd != nil {
		// Fail closed: only the WAIT's verdict, once read, acknowledges
		// the batch's calls (not a panic between sending and reading it).
		for _, c := range batch {
			c.werr = errNoVerdict
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var err error
	if len(cmds) == 1 && p.waitCmd == nil {
		err = p.c.Process(ctx, cmds[0])
	} else {
		pipe := p.c.Pipeline()
		_ = pipe.BatchProcess(ctx, cmds...)
		var w *redis.Cmd
		if p.waitCmd != nil {
			w = p.waitCmd(ctx)
			_ = pipe.Process(ctx, w)
		}
		_, err = pipe.Exec(ctx) // each command holds its own result, or none
		if w != nil {
			if err != nil && unanswered(w) {
				w.SetErr(err)
			}
			werr := p.waited(w)
			for _, c := range batch {
				c.werr = werr
			}
		}
	}
	// go-redis does not set the error on the commands when it gives up
	// before sending them (no connection, on its last attempt), nor does
	// a hook that returns without sending them.
	if err == nil {
		err = errNoReply
	}
	failUnanswered(batch, err)
}

var (
	errNoVerdict = unavailable(errors.New("WAIT: no verdict read (sending the batch failed); the write may stand"))
	errNoReply   = errors.New("redis: no reply")
)

// failUnanswered sets err on the batch's commands that hold neither a
// reply nor an error. It is never set before sending: go-redis fills only
// commands that have no error, so a real one would be masked.
func failUnanswered(batch []*pipeCall, err error) {
	for _, c := range batch {
		if unanswered(c.cmd) {
			c.cmd.SetErr(err)
		}
	}
}

// unanswered reports whether cmd holds neither a reply nor an error.
func unanswered(cmd *redis.Cmd) bool { return cmd.Err() == nil && cmd.Val() == nil }
