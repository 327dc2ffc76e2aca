package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/liveedge/liveedge/cmd/liveedge/config"
	"github.com/liveedge/liveedge/hub/auth"
)

// tokenCmd implements `liveedge token sign`: it prints a ready URL query
// (expires=…&token=…) for a stream. With --publish the token is signed with
// the app's publish secret (auth.publish_secrets, LIVEEDGE_AUTH_PUBLISH_SECRET
// or LIVEEDGE_AUTH_PUBLISH_SECRET_<APP>), or with its secret if it has none,
// which then authorizes both play and publish as before.
func tokenCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "sign" {
		fmt.Fprintln(stderr, "usage: liveedge token sign --stream APP/STREAM [--ttl 1h] [--ip ADDR] [--publish] [--config FILE | --secret S] [--algorithm sha256|sha1]")
		return 2
	}
	fs := flag.NewFlagSet("token sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stream := fs.String("stream", "", "stream to sign, app/stream")
	ttl := fs.Duration("ttl", time.Hour, "validity")
	ip := fs.String("ip", "", "bind the token to this client address")
	cfgPath := fs.String("config", "", "configuration file holding the app's secret")
	secret := fs.String("secret", "", "secret (default: from --config, or LIVEEDGE_AUTH_SECRET[_APP]; with --publish, the publish secret first)")
	pub := fs.Bool("publish", false, "sign a publish token with the app's publish secret (auth.publish_secrets, LIVEEDGE_AUTH_PUBLISH_SECRET[_APP]); without one, with its secret")
	algName := fs.String("algorithm", "", "sha256 or sha1 (default: from the configuration)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	app, _, ok := strings.Cut(*stream, "/")
	if !ok || app == "" {
		fmt.Fprintln(stderr, "liveedge token sign: --stream must be app/stream")
		return 2
	}
	cfg := config.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			fmt.Fprintf(stderr, "liveedge token sign: %v\n", err)
			return 1
		}
	}
	cfg.ApplyEnv(os.Getenv)
	key := *secret
	if key == "" && *pub {
		// ApplyEnv covers only the apps the file names; look this one up too.
		key = os.Getenv(config.EnvPublishSecretName(app))
		if key == "" {
			key, _ = cfg.Auth.PublishSecret(app)
		}
	}
	if key == "" {
		// ApplyEnv covers only the apps the file names; look this one up too.
		key = os.Getenv(config.EnvSecretName(app))
	}
	if key == "" {
		key, _ = cfg.Auth.Secret(app)
	}
	if key == "" {
		if *pub {
			fmt.Fprintf(stderr, "liveedge token sign: no publish secret or secret for app %q (use --secret, --config, %s or %s)\n",
				app, config.EnvPublishSecretName(app), config.EnvSecretName(app))
		} else {
			fmt.Fprintf(stderr, "liveedge token sign: no secret for app %q (use --secret, --config or %s)\n", app, config.EnvSecretName(app))
		}
		return 1
	}
	an := cfg.Auth.Algorithm
	if *algName != "" {
		an = *algName
	}
	alg, err := auth.ParseAlgorithm(an)
	if err != nil {
		fmt.Fprintf(stderr, "liveedge token sign: %v\n", err)
		return 2
	}
	var addr netip.Addr
	if *ip != "" {
		if addr, err = netip.ParseAddr(*ip); err != nil {
			fmt.Fprintf(stderr, "liveedge token sign: --ip: %v\n", err)
			return 2
		}
	}
	s := auth.Signer{Algorithm: alg, Secret: []byte(key), ExpiresParam: cfg.Auth.ExpiresParam, TokenParam: cfg.Auth.TokenParam}
	fmt.Fprintln(stdout, s.Query(*stream, *ttl, time.Now(), addr).Encode())
	return 0
}
