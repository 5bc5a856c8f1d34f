//! The OpenAPI description checked in under `docs/` is the one the code serves.

#[test]
fn the_checked_in_openapi_description_is_current() {
    testkit::assert_checked_in(
        "docs/openapi/projector.json",
        &platform::openapi::to_json(&projector::api_description()),
    );
}
