package main

import (
	"runtime/debug"
	"strings"
)

// Set at link time by releases (.goreleaser.yaml) and make build:
// -X main.version=v1.2.3 -X main.commit=<full hash> -X main.date=<RFC 3339>.
// date is the commit's time, not the build machine's clock, so that one
// commit always builds the same bytes.
var version, commit, date string

// buildVersion is the version the binary reports (credentials.Version, so
// also the User-Agent): "v1.2.3 (commit <hash>, built <date>)", with only
// the parts that are known.
func buildVersion() string {
	if version != "" {
		// Stamped: the build info would not be used, and reading it
		// parses the module list in every process, cached gets included.
		return describeBuild(version, commit, date, nil)
	}
	bi, _ := debug.ReadBuildInfo()
	return describeBuild(version, commit, date, bi)
}

// describeBuild says which build this is. A version set at link time
// wins whole: whoever stamped it stamped what they meant to, and the
// commit and date beside it come from the same place. Otherwise bi
// speaks: go install ...@v1.2.3 records the module version alone; a go
// build in a checkout records the version go derives from git, and the
// vcs.* settings. "(devel)" is left only when nothing is known.
func describeBuild(version, commit, date string, bi *debug.BuildInfo) string {
	modified := false
	if version == "" {
		version, commit, date = "(devel)", "", ""
		if bi != nil {
			if bi.Main.Version != "" {
				version = bi.Main.Version
			}
			vcs := map[string]string{}
			for _, s := range bi.Settings {
				vcs[s.Key] = s.Value
			}
			commit, date = vcs["vcs.revision"], vcs["vcs.time"]
			// go 1.24+ already ends the version with +dirty.
			modified = vcs["vcs.modified"] == "true" && !strings.HasSuffix(version, "+dirty")
		}
	}
	var parts []string
	if commit != "" {
		parts = append(parts, "commit "+commit)
	}
	if date != "" {
		parts = append(parts, "built "+date)
	}
	if modified {
		parts = append(parts, "uncommitted changes")
	}
	if len(parts) == 0 {
		return version
	}
	return version + " (" + strings.Join(parts, ", ") + ")"
}
