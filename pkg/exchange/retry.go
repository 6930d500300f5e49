package exchange

// Which failures are retried, and why.
//
// An exchange has no side effect on the STS beyond issuing a token, so
// repeating one is always safe; the question is only whether a repeat can
// succeed where the first attempt failed. We retry what a moment can fix and
// nothing else, at most WithMaxAttempts times (3, like the SDK), with
// equal-jittered exponential backoff (250ms, 500ms, ... capped at 4s) that
// honours a Retry-After up to a cap, and never start a wait that would
// outlast the caller's deadline.
//
//	failure                            ours    chainguard-dev/sdk sts (Exchange)
//	connection refused/reset, timeout  retry   gRPC path: retry (Unavailable); HTTP/1 path: no
//	DNS name not found                 no      gRPC path: retry (Unavailable)
//	TLS certificate not trusted        no      no
//	408 Request Timeout                retry   no
//	429 Too Many Requests              retry   no (ResourceExhausted)
//	500 Internal Server Error          no      no (Internal, Unknown and DataLoss share 500)
//	501, 505 and other 5xx             no      no
//	502 Bad Gateway, 503 Unavailable   retry   retry (Unavailable)
//	504 Gateway Timeout                retry   no (Refresh only: DeadlineExceeded)
//	3xx                                no      no (never followed)
//	other 4xx                          no      no
//	200 without a usable token         no      no
//
// Where we differ, and why:
//   - 429 and 504: docs/reference.md#exchange-and-retries lists them as retried. A kubelet starting fifty
//     pods makes a burst the STS's front end may rate-limit (429, with a
//     Retry-After we honour), and a 504 means a gateway gave up on a slow
//     backend; both are about load, not about the request.
//   - 408: the server or a proxy timed out reading a request whose body is a
//     few dozen bytes, which only a stalled network causes.
//   - Connection errors: the SDK's gRPC path retries them (they surface as
//     Unavailable) but its HTTP/1 path does not; we side with the gRPC path,
//     as a node's first pull often races its network coming up. A name that
//     does not resolve or a certificate that does not verify will not be
//     fixed by a retry (the issuer URL is wrong, or the network intercepts
//     TLS), so those fail at once.
//   - 500 we do not retry, for the SDK's reason: grpc-gateway folds
//     Internal, Unknown and DataLoss into 500, and a server bug is not
//     fixed by asking again, only made louder.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
)

// retryable reports whether err, from one attempt, is worth another.
func retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Temporary()
	}
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		return false
	}
	return !permanentNetError(ue.Err)
}

// retryableStatus is the status half of the table above.
func retryableStatus(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// permanentNetError reports network errors that a retry within seconds
// cannot fix: a host name that does not exist, a certificate that does not
// verify.
func permanentNetError(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return true
	}
	var (
		verifyErr   *tls.CertificateVerificationError
		unknownCA   x509.UnknownAuthorityError
		hostnameErr x509.HostnameError
		invalidErr  x509.CertificateInvalidError
	)
	return errors.As(err, &verifyErr) || errors.As(err, &unknownCA) ||
		errors.As(err, &hostnameErr) || errors.As(err, &invalidErr)
}
