package creds

import (
	"context"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// store and lock are the entry points helper.go calls until it is wired to
// storeAt, lockWait and the failure markers; remove this file then.

// store is storeAt with the wall clock.
func (c *cache) store(key string, tok exchange.Token) error {
	return c.storeAt(key, tok, time.Now())
}

// lock is lockWait bounded by lockBudget.
func (c *cache) lock(ctx context.Context, key string) (unlock func(), err error) {
	return c.lockWait(ctx, key, lockBudget(ctx))
}
