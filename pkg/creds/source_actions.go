package creds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// actionsSource asks the GitHub Actions runtime for an ID token with the
// STS's audience, the way actions/core's getIDToken does.
type actionsSource struct {
	url, token string // ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN
	client     *http.Client
}

func (actionsSource) String() string { return "GitHub Actions OIDC" }
func (actionsSource) Missing() string {
	return "ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN unset; the job needs permissions: id-token: write"
}
func (s actionsSource) Enabled() bool { return s.url != "" && s.token != "" }

// cacheKeyParts lets the cache be keyed without fetching the token, which
// is a network call. The request token the runner gives each job (with the
// request URL that names the job) is secret and unique to the job, and
// every OIDC token the job can get has the same subject, so an entry
// written under it was exchanged for this job's own identity; another job,
// even on the same self-hosted runner and user, has another request token
// and so another key. Only a hash of it is ever written (the file name).
func (s actionsSource) cacheKeyParts() []string {
	return []string{"github-actions", s.url, s.token}
}

func (s actionsSource) Provide(ctx context.Context) (AmbientToken, error) {
	source := s.String()
	u, err := url.Parse(s.url)
	if err != nil || u.Host == "" {
		// url.Parse's error quotes the whole value, user info included.
		return AmbientToken{}, fmt.Errorf("%w: ACTIONS_ID_TOKEN_REQUEST_URL is not a URL %s", ErrBadAmbientToken, logsafe.Hidden(s.url))
	}
	q := u.Query()
	q.Set("audience", EnforceAudience)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return AmbientToken{}, fmt.Errorf("%w: %s: cannot build the token request for host %s", ErrBadAmbientToken, source, logsafe.Quote(u.Host, pathLimit))
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "application/json")
	resp, err := exchange.NoRedirects(s.client).Do(req) // the request token goes with it
	if err != nil {
		return AmbientToken{}, fmt.Errorf("%w: cannot reach the GitHub Actions token endpoint %s: %w", ErrNoAmbientToken, logsafe.Quote(u.Host, pathLimit), errors.Unwrap(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenSize))
	if err != nil {
		return AmbientToken{}, fmt.Errorf("%w: reading the GitHub Actions token: %w", ErrNoAmbientToken, err)
	}
	if resp.StatusCode != http.StatusOK {
		return AmbientToken{}, fmt.Errorf("%w: the GitHub Actions token endpoint answered %s; the job needs permissions: id-token: write", ErrNoAmbientToken, fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode)))
	}
	var out struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Value == "" {
		return AmbientToken{}, fmt.Errorf("%w: the GitHub Actions token endpoint answered without a token", ErrBadAmbientToken)
	}
	return ParseAmbientToken(out.Value, source)
}
