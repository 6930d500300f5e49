package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/cgr-helper/docker-credential-cgr/internal/logsafe"
	"github.com/cgr-helper/docker-credential-cgr/pkg/creds"
	"github.com/cgr-helper/docker-credential-cgr/pkg/exchange"
)

// maxBody caps what is read of a registry's or realm's answer.
const maxBody = 64 << 10

// checkRegistries sends the exchanged token to each served host, as docker
// would: GET /v2/, then the token realm its challenge names, then /v2/
// again with the realm's token. Plain net/http: the registry client
// libraries would weigh on the binary every get starts.
func checkRegistries(st *state) result {
	switch {
	case !st.opts.registryCheck:
		return skip("not asked (--registry-check)")
	case st.regTok == "":
		return skip("no registry token (see the exchange check)")
	case len(st.hosts) == 0:
		return skip("the helper serves only wildcards; no host to ask")
	}
	var details []string
	failed := 0
	for _, host := range st.hosts {
		ctx, cancel := context.WithTimeout(st.ctx, st.cfg.Timeout)
		how, err := pingRegistry(ctx, host, creds.Username, st.regTok)
		cancel()
		if err != nil {
			failed++
			details = append(details, host+": "+logsafe.Redact(err.Error(), st.regTok))
			continue
		}
		details = append(details, host+": "+how)
	}
	if failed > 0 {
		return fail(fmt.Sprintf("%d of %d served registries refused the token or could not be reached", failed, len(st.hosts)),
			"a 401 or 403 from the realm means the identity lacks registry.pull there (or the audience is wrong); otherwise check the network to the registry", details...)
	}
	return ok("every served registry accepted the token", details...)
}

// noRedirects is the registry check's client: the token goes with its
// requests, so no redirect is followed (see exchange.NoRedirects).
var noRedirects = exchange.NoRedirects(nil)

// pingRegistry authenticates to host's /v2/ with user and secret through
// the registry's challenge, and says how.
func pingRegistry(ctx context.Context, host, user, secret string) (how string, err error) {
	base := scheme(host) + "://" + host + "/v2/"
	resp, body, err := get(ctx, base, nil)
	if err != nil {
		return "", err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return "GET /v2/ answered 200 without credentials (anonymous access); the token was not needed there", nil
	case http.StatusUnauthorized:
	default:
		return "", fmt.Errorf("GET %s answered %s%s", base, answered(resp), registryMessage(body))
	}
	kind, params := parseChallenge(resp.Header.Get("WWW-Authenticate"))
	var auth func(*http.Request)
	switch kind {
	case "basic":
		auth = func(r *http.Request) { r.SetBasicAuth(user, secret) }
	case "bearer":
		tok, err := realmToken(ctx, host, params, user, secret)
		if err != nil {
			return "", err
		}
		auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
		// The registry may echo the realm's token in its error body.
		defer func() {
			if err != nil {
				err = errors.New(logsafe.Redact(err.Error(), tok))
			}
		}()
	default:
		return "", fmt.Errorf("GET %s answered 401 without a Basic or Bearer challenge", base)
	}
	resp, body, err = get(ctx, base, auth)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s with the token answered %s%s", base, answered(resp), registryMessage(body))
	}
	return "GET /v2/ with the token answered 200 (" + kind + " auth)", nil
}

// realmToken trades the registry token for the realm's, as docker does
// for a Bearer challenge. The realm must be https, or http on loopback:
// the registry token goes to it.
func realmToken(ctx context.Context, host string, params map[string]string, user, secret string) (string, error) {
	realm, err := url.Parse(params["realm"])
	if err != nil || realm.Host == "" || (realm.Scheme != "https" && (realm.Scheme != "http" || !loopback(realm.Host))) {
		return "", fmt.Errorf("the registry's challenge names a token realm %s that is not an https URL; not sending the token there", quote(params["realm"]))
	}
	q := realm.Query()
	if svc := params["service"]; svc != "" {
		q.Set("service", svc)
	}
	realm.RawQuery = q.Encode()
	resp, body, err := get(ctx, realm.String(), func(r *http.Request) { r.SetBasicAuth(user, secret) })
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the token realm %s answered %s%s", quote(realm.Scheme+"://"+realm.Host+realm.Path), answered(resp), registryMessage(body))
	}
	var out struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(body, &out) != nil || out.Token+out.AccessToken == "" {
		return "", fmt.Errorf("the token realm for %s answered 200 without a token", host)
	}
	if out.Token != "" {
		return out.Token, nil
	}
	return out.AccessToken, nil
}

// answer is what get read of a response.
type answer struct {
	StatusCode int
	Header     http.Header
}

// get sends a GET, with auth applied if given, and reads a capped body.
func get(ctx context.Context, u string, auth func(*http.Request)) (answer, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return answer{}, nil, err
	}
	if auth != nil {
		auth(req)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		// The network error may quote the server (a certificate's names).
		return answer{}, nil, fmt.Errorf("cannot reach %s: %s", quote(req.URL.Host), quote(err.Error()))
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	return answer{resp.StatusCode, resp.Header}, body, err
}

// registryMessage is the first message of a registry's error body, quoted,
// or nothing.
func registryMessage(body []byte) string {
	var e struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
		Details string `json:"details"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	if len(e.Errors) > 0 {
		return ": " + quote(strings.TrimSpace(e.Errors[0].Code+" "+e.Errors[0].Message))
	}
	if e.Details != "" {
		return ": " + quote(e.Details)
	}
	return ""
}

// parseChallenge reads a WWW-Authenticate header's scheme (lower case) and
// parameters: Bearer realm="…",service="…",scope="…".
func parseChallenge(h string) (string, map[string]string) {
	kind, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	params := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		key = strings.ToLower(strings.TrimSpace(key))
		var val string
		if strings.HasPrefix(after, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(after) && after[i] != '"'; i++ {
				if after[i] == '\\' && i+1 < len(after) {
					i++
				}
				b.WriteByte(after[i])
			}
			val, after = b.String(), after[min(i+1, len(after)):]
		} else {
			val, after, _ = strings.Cut(after, ",")
			after = "," + after
		}
		params[key] = strings.TrimSpace(val)
		_, rest, _ = strings.Cut(after, ",")
		rest = strings.TrimSpace(rest)
	}
	return strings.ToLower(kind), params
}

// scheme is how docker reaches a registry: plain http only on loopback.
func scheme(host string) string {
	if loopback(host) {
		return "http"
	}
	return "https"
}

func loopback(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// answered is an answer's code and its standard text, never the server's
// own reason phrase, which is text it chose.
func answered(resp answer) string {
	s := fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	if resp.StatusCode/100 == 3 {
		// Docker would follow it; say why doctor did not.
		to := "elsewhere"
		if u, err := url.Parse(resp.Header.Get("Location")); err == nil && u.Host != "" {
			to = "to " + quote(u.Scheme+"://"+u.Host)
		}
		s += " (a redirect " + to + ", not followed: the token would go with it)"
	}
	return s
}
