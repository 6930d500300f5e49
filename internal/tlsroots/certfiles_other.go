//go:build !linux

package tlsroots

// Elsewhere Go asks the platform's verifier (macOS, Windows) or reads roots
// its own way, and setting roots would bypass that: Transport leaves
// verification to Go.
var certFiles []string

const bundleFirst = false
