package subject

import (
	"fmt"

	"github.com/rgw-nats/rgw-nats/adapter/internal/percent"
)

// Unescape reverses Token: the tests prove with it that Token loses nothing.
func Unescape(tok string) (string, error) {
	s, err := percent.Decode(tok)
	if err != nil {
		return "", fmt.Errorf("subject: %w in %q", err, tok)
	}
	return s, nil
}
