package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDescribeBuild(t *testing.T) {
	t.Parallel()
	const (
		rev  = "69bb8c4e0f1d2a3b4c5d6e7f8091a2b3c4d5e6f7"
		when = "2026-11-26T02:33:55Z"
	)
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{
			{Key: "-trimpath", Value: "true"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: when},
			{Key: "vcs.modified", Value: modified},
		}
	}
	info := func(v string, s ...debug.BuildSetting) *debug.BuildInfo {
		bi := &debug.BuildInfo{Settings: s}
		bi.Main.Path = "github.com/cgr-helper/docker-credential-cgr"
		bi.Main.Version = v
		return bi
	}
	tests := []struct {
		name                  string
		version, commit, date string // as set at link time
		bi                    *debug.BuildInfo
		want                  string
	}{
		{
			name:    "release: all three linked; build info ignored",
			version: "v1.2.3", commit: rev, date: when,
			bi:   info("(devel)", vcs("true")...),
			want: "v1.2.3 (commit " + rev + ", built " + when + ")",
		},
		{
			name:    "make build on a dirty, untagged tree",
			version: "69bb8c4-dirty", commit: rev, date: when,
			bi:   info("v0.0.0-20261126023355-69bb8c4e0f1d+dirty", vcs("true")...),
			want: "69bb8c4-dirty (commit " + rev + ", built " + when + ")",
		},
		{
			name:    "only the version linked: nothing is borrowed from build info",
			version: "v0.0.0-integration",
			bi:      info("v0.0.0-20261126023355-69bb8c4e0f1d", vcs("false")...),
			want:    "v0.0.0-integration",
		},
		{
			name: "go install at a tag: the module version, no vcs settings",
			bi:   info("v1.2.3"),
			want: "v1.2.3",
		},
		{
			name: "go install at a commit: the pseudo-version names it",
			bi:   info("v0.0.0-20261126023355-69bb8c4e0f1d"),
			want: "v0.0.0-20261126023355-69bb8c4e0f1d",
		},
		{
			name: "go build in a clean checkout",
			bi:   info("v0.0.0-20261126023355-69bb8c4e0f1d", vcs("false")...),
			want: "v0.0.0-20261126023355-69bb8c4e0f1d (commit " + rev + ", built " + when + ")",
		},
		{
			name: "go build in a dirty checkout: +dirty already says so",
			bi:   info("v0.0.0-20261126023355-69bb8c4e0f1d+dirty", vcs("true")...),
			want: "v0.0.0-20261126023355-69bb8c4e0f1d+dirty (commit " + rev + ", built " + when + ")",
		},
		{
			name: "vcs settings but no version from them: modified is said",
			bi:   info("(devel)", vcs("true")...),
			want: "(devel) (commit " + rev + ", built " + when + ", uncommitted changes)",
		},
		{
			name: "bare checkout build (-buildvcs=false)",
			bi:   info("(devel)", debug.BuildSetting{Key: "-trimpath", Value: "true"}),
			want: "(devel)",
		},
		{
			name: "no module version recorded",
			bi:   info(""),
			want: "(devel)",
		},
		{
			name: "no build info at all",
			want: "(devel)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, describeBuild(tt.version, tt.commit, tt.date, tt.bi))
		})
	}
}

// TestVersionLinked builds the binary with the three values a release
// links in and checks that `version` prints them.
func TestVersionLinked(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "docker-credential-cgr")
	const (
		rev  = "0123456789abcdef0123456789abcdef01234567"
		when = "2026-01-02T03:04:05Z"
	)
	build := exec.Command("go", "build", "-trimpath", "-o", bin,
		"-ldflags", "-X main.version=v9.8.7 -X main.commit="+rev+" -X main.date="+when, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())
	out, err := exec.Command(bin, "version").Output()
	require.NoError(t, err)
	assert.Equal(t, "docker-credential-cgr (github.com/cgr-helper/docker-credential-cgr) v9.8.7 (commit "+rev+", built "+when+")\n", string(out))
	// -v is docker-credential-helpers' spelling of the same command.
	out, err = exec.Command(bin, "-v").Output()
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(string(out), "v9.8.7 (commit "+rev+", built "+when+")\n"), "%q", out)
}
