package creds

import (
	"context"
	"time"

	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// noCache is the cache when it is off (CHAINGUARD_NO_CACHE, no cache
// folder) or unusable: every load misses, the lock is always free and
// nothing is kept, so every call exchanges.
type noCache struct{}

func (noCache) load(string, time.Time) (exchange.Token, bool) { return exchange.Token{}, false }

func (noCache) lockWait(context.Context, string, time.Duration, func() bool) (func(), error) {
	return func() {}, nil
}

func (noCache) loadFailure(string, time.Time, time.Time) (string, bool) { return "", false }
func (noCache) keep(string, exchange.Token, time.Time)                  {}
func (noCache) keepFailure(string, string, time.Time)                   {}
func (noCache) appendFailure(Failure) error                             { return nil }
func (noCache) close() error                                            { return nil }
