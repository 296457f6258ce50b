package store

import (
	"context"
	"fmt"
)

// RotateAdvertiserKey implements [Registry]: one UPDATE, so the old key
// stops working when the new one starts.
func (c *core) RotateAdvertiserKey(ctx context.Context, name, keyID string, keyHash [32]byte) (Advertiser, error) {
	if err := validName("key id", keyID); err != nil {
		return Advertiser{}, fmt.Errorf("store: rotate key: %w", err)
	}
	res, err := c.writer.exec(ctx, `UPDATE advertisers SET key_id = $1, api_key_hash = $2 WHERE name = $3`, keyID, keyHash[:], name)
	if err != nil {
		if c.isUnique(err) {
			return Advertiser{}, ErrAdvertiserExists
		}
		return Advertiser{}, fmt.Errorf("store: rotate key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return Advertiser{}, fmt.Errorf("store: rotate key: %w", err)
	} else if n == 0 {
		return Advertiser{}, ErrUnknownAdvertiser
	}
	return advertiserWhere(ctx, c.writer, "name = $1", name)
}
