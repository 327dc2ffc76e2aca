package config

import "strings"

// Environment variables read by ApplyEnv.
const (
	// EnvSecret sets auth.secrets["*"], the default secret.
	EnvSecret = "LIVEEDGE_AUTH_SECRET"
	// EnvSecretPrefix + the app name in upper case, with every character
	// other than an ASCII letter or digit turned into "_", sets that app's
	// secret: LIVEEDGE_AUTH_SECRET_LIVE, LIVEEDGE_AUTH_SECRET_MY_APP for
	// "my-app".
	EnvSecretPrefix = EnvSecret + "_"
	// EnvPublishSecret sets auth.publish_secrets["*"], the default secret
	// of publish tokens.
	EnvPublishSecret = "LIVEEDGE_AUTH_PUBLISH_SECRET"
	// EnvPublishSecretPrefix + the app name, spelt as for EnvSecretPrefix,
	// sets that app's publish secret: LIVEEDGE_AUTH_PUBLISH_SECRET_LIVE.
	EnvPublishSecretPrefix = EnvPublishSecret + "_"
)

// EnvSecretName returns the environment variable holding app's secret.
func EnvSecretName(app string) string { return envName(EnvSecretPrefix, app) }

// EnvPublishSecretName returns the environment variable holding app's
// publish secret.
func EnvPublishSecretName(app string) string { return envName(EnvPublishSecretPrefix, app) }

// envName returns prefix + app in upper case, with every character other
// than an ASCII letter or digit turned into "_".
func envName(prefix, app string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, r := range app {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// ApplyEnv overrides secrets from the environment, so they need not be
// written in the file. getenv is typically os.Getenv (nil means no
// environment); variables that are unset or empty change nothing.
//
//   - LIVEEDGE_AUTH_SECRET sets auth.secrets["*"];
//   - LIVEEDGE_AUTH_SECRET_<APP> (see EnvSecretName) sets auth.secrets[app]
//     for every app named in auth.secrets, auth.publish_secrets, auth.apps
//     or streams[].match;
//   - LIVEEDGE_AUTH_PUBLISH_SECRET sets auth.publish_secrets["*"];
//   - LIVEEDGE_AUTH_PUBLISH_SECRET_<APP> (see EnvPublishSecretName) sets
//     auth.publish_secrets[app] for the same apps;
//   - LIVEEDGE_ADMIN_SECRET sets admin.secret.
//
// Parse and Load do not call it: call it after loading and before
// Validate, which checks that required secrets exist.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if getenv == nil {
		return
	}
	set := func(m *map[string]string, app, v string) {
		if v == "" {
			return
		}
		if *m == nil {
			*m = map[string]string{}
		}
		(*m)[app] = v
	}
	// Apps are collected first: setting a secret must not change the set.
	apps := c.appNames()
	if v := getenv(EnvAdminSecret); v != "" {
		c.Admin.Secret = v
	}
	set(&c.Auth.Secrets, "*", getenv(EnvSecret))
	set(&c.Auth.PublishSecrets, "*", getenv(EnvPublishSecret))
	for _, app := range apps {
		set(&c.Auth.Secrets, app, getenv(EnvSecretName(app)))
		set(&c.Auth.PublishSecrets, app, getenv(EnvPublishSecretName(app)))
	}
}
