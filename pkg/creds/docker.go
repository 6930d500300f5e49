package creds

import "github.com/docker/docker-credential-helpers/credentials"

// The docker credential-helper protocol beyond Get. There is nothing to
// store: a registry token is minted on demand. So store and erase succeed
// for served registries (docker login/logout keep working) and are
// not-found for others, and list names the served registries.

var errNotFound = credentials.NewErrCredentialsNotFound()

var _ credentials.Helper = (*Helper)(nil)

// Add accepts and discards credentials for a served registry.
func (h *Helper) Add(c *credentials.Credentials) error {
	if !h.Serves(c.ServerURL) {
		return errNotFound
	}
	return nil
}

// Delete succeeds for a served registry: there is nothing stored to delete.
func (h *Helper) Delete(serverURL string) error {
	if !h.Serves(serverURL) {
		return errNotFound
	}
	return nil
}

// List maps each served registry host to the username its tokens go with.
func (h *Helper) List() (map[string]string, error) {
	out := map[string]string{}
	for _, host := range h.regs.hosts() {
		out[host] = Username
	}
	return out, nil
}
