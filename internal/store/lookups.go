package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// userLookups coalesces concurrent reads of users by channel user id on PostgreSQL.
// Every trigger reads its user before its run starts, and a round trip of its own per
// read cost about as much CPU, in Parley and in PostgreSQL together, as the rest of the
// run (bench/trigger, 64 clients: about 4,000 runs/s with the reads, 4,800–5,800
// without). A read that finds a lane idle goes out at once, so an idle server waits for
// nothing; reads that arrive while every lane waits on the database go together in the
// next lane's query.
type userLookups struct {
	pool  *pgxpool.Pool
	cols  string
	queue chan userLookup
	stop  chan struct{}
	lanes sync.WaitGroup
}

type userLookup struct {
	botID         int64
	channelUserID string
	reply         chan lookupResult // buffered: a lane never waits for a caller that gave up
}

type lookupResult struct {
	user User
	err  error
}

const (
	// lookupLanes is how many coalesced reads may be in flight at once. With 1 or 2,
	// bench/trigger at 64 clients ran 5,000–5,300 runs/s; 4 lanes, 4,600–5,200; 8, 4,000–4,700.
	lookupLanes = 2
	// maxLookupBatch bounds the reads one round trip carries.
	maxLookupBatch = 256
	// lookupTimeout bounds a coalesced read: its callers have deadlines of their own
	// and stop waiting at them, but the lane must not hang on a database that never answers.
	lookupTimeout = 30 * time.Second
)

var errStoreClosed = errors.New("store closed")

func newUserLookups(pool *pgxpool.Pool, cols string) *userLookups {
	l := &userLookups{pool: pool, cols: cols, queue: make(chan userLookup, maxLookupBatch), stop: make(chan struct{})}
	l.lanes.Add(lookupLanes)
	for range lookupLanes {
		go l.lane()
	}
	return l
}

// close stops the lanes; reads still queued or asked for later fail with errStoreClosed.
func (l *userLookups) close() {
	close(l.stop)
	l.lanes.Wait()
}

// get returns the user, or ErrNotFound.
func (l *userLookups) get(ctx context.Context, botID int64, channelUserID string) (User, error) {
	if err := ctx.Err(); err != nil {
		return User{}, err
	}
	req := userLookup{botID: botID, channelUserID: channelUserID, reply: make(chan lookupResult, 1)}
	select {
	case l.queue <- req:
	case <-l.stop:
		return User{}, errStoreClosed
	case <-ctx.Done():
		return User{}, ctx.Err()
	}
	select {
	case res := <-req.reply:
		return res.user, res.err
	case <-l.stop:
		// The lane may have answered just before it stopped.
		select {
		case res := <-req.reply:
			return res.user, res.err
		default:
			return User{}, errStoreClosed
		}
	case <-ctx.Done():
		return User{}, ctx.Err()
	}
}

func (l *userLookups) lane() {
	defer l.lanes.Done()
	batch := make([]userLookup, 0, maxLookupBatch)
	for {
		select {
		case first := <-l.queue:
			batch = append(batch[:0], first)
		case <-l.stop:
			return
		}
	drain:
		for len(batch) < maxLookupBatch {
			select {
			case next := <-l.queue:
				batch = append(batch, next)
			default:
				break drain
			}
		}
		l.answer(batch)
	}
}

type userKey struct {
	botID         int64
	channelUserID string
}

// answer reads the users of a batch in one round trip: the statements are the same
// single-row reads by the unique key as a lone read's, pipelined. (One statement per
// bot with "= ANY($2)" was tried: its cached generic plan, made while the table was
// still small, scanned the whole table, doubling PostgreSQL's CPU per run.)
func (l *userLookups) answer(batch []userLookup) {
	keys := make([]userKey, 0, len(batch))
	found := make(map[userKey]User, len(batch))
	for _, req := range batch {
		k := userKey{req.botID, req.channelUserID}
		if _, dup := found[k]; !dup {
			found[k] = User{}
			keys = append(keys, k)
		}
	}
	err := l.read(keys, found)
	for _, req := range batch {
		res := lookupResult{err: err}
		if err == nil {
			if u := found[userKey{req.botID, req.channelUserID}]; u.ID != 0 {
				res.user = u
			} else {
				res.err = ErrNotFound
			}
		}
		if res.err != nil {
			res.err = fmt.Errorf("user %s: %w", req.channelUserID, res.err)
		}
		req.reply <- res
	}
}

func (l *userLookups) read(keys []userKey, found map[userKey]User) error {
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	b := &pgx.Batch{}
	for _, k := range keys {
		b.Queue(`SELECT `+l.cols+` FROM users WHERE bot_id = $1 AND channel_user_id = $2`, k.botID, k.channelUserID)
	}
	results := l.pool.SendBatch(ctx, b)
	err := scanLookups(results, keys, found)
	if cerr := results.Close(); err == nil {
		err = cerr
	}
	return err
}

func scanLookups(results pgx.BatchResults, keys []userKey, found map[userKey]User) error {
	for _, k := range keys {
		u, err := scanUser(results.QueryRow())
		switch {
		case err == nil:
			found[k] = u
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
	}
	return nil
}
