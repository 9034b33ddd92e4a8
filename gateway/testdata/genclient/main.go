// Command genclient drives a running mogate through the Go client that
// oapi-codegen generates from /openapi.json (client.gen.go, written beside
// this file by TestGeneratedClient). It prints "ok" when every call
// answered as documented, else the first failure, and exits 1.
//
// Environment: MOGATE_URL (the server), MOGATE_KEY (an API key).
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
)

func main() {
	if err := run(context.Background(), os.Getenv("MOGATE_URL"), os.Getenv("MOGATE_KEY")); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("ok")
}

func bearer(key string) RequestEditorFn {
	return func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+key)
		return nil
	}
}

func ptr[T any](v T) *T { return &v }

// wantError checks an error answer: its status and its decoded code.
func wantError(what string, status, wantStatus int, e *Error, code ErrorCode) error {
	if status != wantStatus || e == nil || e.Error.Code != code || e.Error.Message == "" {
		return fmt.Errorf("%s = %d %+v, want %d %s", what, status, e, wantStatus, code)
	}
	return nil
}

func run(ctx context.Context, url, key string) error {
	c, err := NewClientWithResponses(url, WithRequestEditorFn(bearer(key)))
	if err != nil {
		return err
	}
	body := CreateVerificationJSONRequestBody{
		Number:      ptr("+14155550123"),
		CallbackUrl: ptr("https://app.example.com/cb"),
		Metadata:    &map[string]interface{}{"order": "A-1"},
	}
	idem := &CreateVerificationParams{IdempotencyKey: ptr("order-A-1")}

	// Create, then replay with the same Idempotency-Key.
	created, err := c.CreateVerificationWithResponse(ctx, idem, body)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if created.StatusCode() != 201 || created.JSON201 == nil || created.JSON201.Status != VerificationStatusPending {
		return fmt.Errorf("create = %d %s", created.StatusCode(), created.Body)
	}
	v := created.JSON201
	if v.Number == nil || *v.Number != "+14155550123" || v.Metadata["order"] != "A-1" || v.Ui.PageUrl == "" || v.Code == "" {
		return fmt.Errorf("create answered %+v", v)
	}
	if created.Headers201 == nil || created.Headers201.IdempotentReplayed != nil {
		return fmt.Errorf("a first create says Idempotent-Replayed: %+v", created.Headers201)
	}
	replay, err := c.CreateVerificationWithResponse(ctx, idem, body)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if replay.StatusCode() != 201 || replay.JSON201 == nil || replay.JSON201.Id != v.Id {
		return fmt.Errorf("replay = %d %s", replay.StatusCode(), replay.Body)
	}
	if h := replay.Headers201; h == nil || h.IdempotentReplayed == nil || *h.IdempotentReplayed != "true" {
		return fmt.Errorf("replay headers = %+v", replay.Headers201)
	}
	other := body
	other.Number = ptr("+14155550124")
	reused, err := c.CreateVerificationWithResponse(ctx, idem, other)
	if err != nil {
		return fmt.Errorf("reused key: %w", err)
	}
	if err := wantError("the same key with another body", reused.StatusCode(), 409, reused.JSON409, IdempotencyKeyReused); err != nil {
		return err
	}

	// Get, with and without a long-poll.
	got, err := c.GetVerificationWithResponse(ctx, v.Id, nil)
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	if got.StatusCode() != 200 || got.JSON200 == nil || got.JSON200.Id != v.Id || got.JSON200.Reason != nil || got.JSON200.Attempts != 0 {
		return fmt.Errorf("get = %d %s", got.StatusCode(), got.Body)
	}
	badWait, err := c.GetVerificationWithResponse(ctx, v.Id, &GetVerificationParams{Wait: ptr("forever")})
	if err != nil {
		return fmt.Errorf("get ?wait=forever: %w", err)
	}
	if err := wantError("?wait=forever", badWait.StatusCode(), 400, badWait.JSON400, InvalidWait); err != nil {
		return err
	}
	list, err := c.ListPendingVerificationsWithResponse(ctx, &ListPendingVerificationsParams{Number: "+14155550123"})
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	if list.StatusCode() != 200 || list.JSON200 == nil || len(list.JSON200.Data) != 1 || list.JSON200.Data[0].Id != v.Id {
		return fmt.Errorf("list = %d %s", list.StatusCode(), list.Body)
	}
	qr, err := c.GetVerificationQRWithResponse(ctx, v.Id)
	if err != nil {
		return fmt.Errorf("qr: %w", err)
	}
	if qr.StatusCode() != 200 || qr.HTTPResponse.Header.Get("Content-Type") != "image/png" || len(qr.Body) == 0 {
		return fmt.Errorf("qr = %d %s", qr.StatusCode(), qr.HTTPResponse.Header.Get("Content-Type"))
	}

	// Cancel, and cancel again.
	cancelled, err := c.CancelVerificationWithResponse(ctx, v.Id)
	if err != nil {
		return fmt.Errorf("cancel: %w", err)
	}
	if cancelled.StatusCode() != 200 || cancelled.JSON200 == nil || cancelled.JSON200.Status != VerificationDetailStatusCancelled ||
		cancelled.JSON200.Reason == nil || *cancelled.JSON200.Reason != VerificationDetailReasonCancelledByApi {
		return fmt.Errorf("cancel = %d %s", cancelled.StatusCode(), cancelled.Body)
	}
	again, err := c.CancelVerificationWithResponse(ctx, v.Id)
	if err != nil {
		return fmt.Errorf("cancel again: %w", err)
	}
	if err := wantError("cancel again", again.StatusCode(), 409, again.JSON409, NotPending); err != nil {
		return err
	}

	// Capture mode: number left out.
	capture, err := c.CreateVerificationWithResponse(ctx, nil, CreateVerificationJSONRequestBody{Country: ptr("US")})
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	if capture.StatusCode() != 201 || capture.JSON201 == nil || capture.JSON201.Number != nil {
		return fmt.Errorf("capture = %d %s", capture.StatusCode(), capture.Body)
	}

	// Error bodies.
	anonymous, err := NewClientWithResponses(url)
	if err != nil {
		return err
	}
	noKey, err := anonymous.GetVerificationWithResponse(ctx, v.Id, nil)
	if err != nil {
		return fmt.Errorf("no key: %w", err)
	}
	if err := wantError("no key", noKey.StatusCode(), 401, noKey.JSON401, MissingApiKey); err != nil {
		return err
	}
	wrong, err := c.GetVerificationWithResponse(ctx, v.Id, nil, bearer("not-a-key-of-this-deployment"))
	if err != nil {
		return fmt.Errorf("wrong key: %w", err)
	}
	if err := wantError("a wrong key", wrong.StatusCode(), 401, wrong.JSON401, InvalidApiKey); err != nil {
		return err
	}
	missing, err := c.GetVerificationWithResponse(ctx, "vrf_"+"aaaaaaaaaaaaaaaaaaaaaaaaaa", nil)
	if err != nil {
		return fmt.Errorf("missing: %w", err)
	}
	if err := wantError("a missing verification", missing.StatusCode(), 404, missing.JSON404, NotFound); err != nil {
		return err
	}
	invalid, err := c.CreateVerificationWithResponse(ctx, nil, CreateVerificationJSONRequestBody{Number: ptr("12")})
	if err != nil {
		return fmt.Errorf("invalid number: %w", err)
	}
	if err := wantError("number 12", invalid.StatusCode(), 422, invalid.JSON422, InvalidNumber); err != nil {
		return err
	}

	// Channels: an SMS route as asked, and 422 channel_unavailable for a
	// channel no pool number serves.
	sms, err := c.CreateVerificationWithResponse(ctx, nil, CreateVerificationJSONRequestBody{
		Number: ptr("+14155550126"), Channels: &[]CreateRequestChannels{CreateRequestChannelsSms}, ClientCountry: ptr("US"),
	})
	if err != nil {
		return fmt.Errorf("create with channels: %w", err)
	}
	if sms.StatusCode() != 201 || sms.JSON201 == nil || sms.JSON201.Ui.SmsUri == "" {
		return fmt.Errorf("create with channels = %d %s", sms.StatusCode(), sms.Body)
	}
	wa, err := c.CreateVerificationWithResponse(ctx, nil, CreateVerificationJSONRequestBody{
		Number: ptr("+14155550127"), Channels: &[]CreateRequestChannels{CreateRequestChannelsSms, CreateRequestChannelsWhatsapp},
	})
	if err != nil {
		return fmt.Errorf("create with whatsapp: %w", err)
	}
	if err := wantError("whatsapp without a whatsapp number", wa.StatusCode(), 422, wa.JSON422, ChannelUnavailable); err != nil {
		return err
	}

	// The Contiguity-compatible API, envelope and all.
	ini, err := c.ContiguityInitiateWithResponse(ctx, nil, ContiguityInitiateJSONRequestBody{Number: "+14155550125", Factor: ptr("blue horse")})
	if err != nil {
		return fmt.Errorf("initiate: %w", err)
	}
	if ini.StatusCode() != 200 || ini.JSON200 == nil || ini.JSON200.Data.Factor != "blue horse" || ini.JSON200.Object != InitiateResponseObjectResponse {
		return fmt.Errorf("initiate = %d %s", ini.StatusCode(), ini.Body)
	}
	ver, err := c.ContiguityVerifyWithResponse(ctx, ini.JSON200.Data.OtpId)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if ver.StatusCode() != 200 || ver.JSON200 == nil || ver.JSON200.Data.Status != VerifyDataStatusPending {
		return fmt.Errorf("verify = %d %s", ver.StatusCode(), ver.Body)
	}
	bad, err := c.ContiguityInitiateWithResponse(ctx, nil, ContiguityInitiateJSONRequestBody{Number: "12"})
	if err != nil {
		return fmt.Errorf("initiate 12: %w", err)
	}
	if bad.StatusCode() != 400 || bad.JSON400 == nil || bad.JSON400.Object != ContiguityErrorObjectError || bad.JSON400.Data.Status != 400 {
		return fmt.Errorf("initiate 12 = %d %s", bad.StatusCode(), bad.Body)
	}
	return nil
}
