package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/parleyhq/parley/internal/flow"
	"github.com/parleyhq/parley/internal/store"
)

// ErrFlowNotFound is returned for a flow key the bot does not have.
var ErrFlowNotFound = errors.New("flow not found")

// compiledFlow is one parsed version of a flow. Versions never change once stored, so
// they are cached for good.
type compiledFlow struct {
	id      int64
	version int
	key     string
	f       *flow.Flow
}

// currentTTL is how long this instance trusts its idea of a flow's current version; a
// flow imported through another instance is used by new runs within it.
const currentTTL = time.Second

type flowCache struct {
	st       *store.Store
	mu       sync.RWMutex
	versions map[versionKey]*compiledFlow
	latest   map[currentKey]currentEntry
}

type versionKey struct {
	id      int64
	version int
}

type currentKey struct {
	botID int64
	key   string // lower case
}

type currentEntry struct {
	cf      *compiledFlow
	expires time.Time
}

func newFlowCache(st *store.Store) *flowCache {
	return &flowCache{st: st, versions: map[versionKey]*compiledFlow{}, latest: map[currentKey]currentEntry{}}
}

// current returns the bot's flow with this key at its current version.
func (c *flowCache) current(ctx context.Context, botID int64, key string) (*compiledFlow, error) {
	ck := currentKey{botID, strings.ToLower(key)}
	now := time.Now()
	c.mu.RLock()
	ent, ok := c.latest[ck]
	c.mu.RUnlock()
	if ok && now.Before(ent.expires) {
		return ent.cf, nil
	}
	rec, err := c.st.FlowByKey(ctx, botID, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrFlowNotFound, key)
	}
	if err != nil {
		return nil, err
	}
	cf, err := c.compile(rec)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.latest[ck] = currentEntry{cf: cf, expires: now.Add(currentTTL)}
	c.mu.Unlock()
	return cf, nil
}

// version returns one version of a flow.
func (c *flowCache) version(ctx context.Context, id int64, version int) (*compiledFlow, error) {
	c.mu.RLock()
	cf, ok := c.versions[versionKey{id, version}]
	c.mu.RUnlock()
	if ok {
		return cf, nil
	}
	rec, err := c.st.FlowVersion(ctx, id, version)
	if err != nil {
		return nil, err
	}
	return c.compile(rec)
}

func (c *flowCache) compile(rec store.FlowRecord) (*compiledFlow, error) {
	vk := versionKey{rec.ID, rec.Version}
	c.mu.RLock()
	cf, ok := c.versions[vk]
	c.mu.RUnlock()
	if ok {
		return cf, nil
	}
	f, err := flow.Parse(rec.Document)
	if err != nil {
		return nil, fmt.Errorf("stored flow %s v%d: %w", rec.Key, rec.Version, err)
	}
	cf = &compiledFlow{id: rec.ID, version: rec.Version, key: rec.Key, f: f}
	c.mu.Lock()
	c.versions[vk] = cf
	c.mu.Unlock()
	return cf, nil
}

// forget drops the cached current version of a flow (after an import here).
func (c *flowCache) forget(botID int64, key string) {
	c.mu.Lock()
	delete(c.latest, currentKey{botID, strings.ToLower(key)})
	c.mu.Unlock()
}
