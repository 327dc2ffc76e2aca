package auth_test

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/liveedge/liveedge/hub/auth"
)

func Example() {
	secret := []byte("change-me")
	now := time.Unix(1_700_000_000, 0)

	// Sign a one-hour play URL for live/cam1 (unbound to any client IP).
	q := auth.Signer{Secret: secret}.Query("live/cam1", time.Hour, now, netip.Addr{})
	fmt.Println("expires:", q.Get("expires"))

	p := &auth.Policy{
		Default:   auth.AppPolicy{Secret: secret, Play: true, Publish: true},
		ClockSkew: 30 * time.Second,
		Now:       func() time.Time { return now },
	}
	fmt.Println(p.Check(auth.Request{Action: auth.Play, Stream: "live/cam1", Query: q}))

	// The same token does not open another stream.
	err := p.Check(auth.Request{Action: auth.Play, Stream: "live/cam2", Query: q})
	fmt.Println(errors.Is(err, auth.ErrBadSignature), err)

	// Output:
	// expires: 1700003600
	// <nil>
	// true auth: bad token signature: play live/cam2
}
