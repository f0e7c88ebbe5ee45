//! The fastest honest upstream: a fixed chat completion, no work per request.

use axum::routing::post;

pub const ANSWER: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Thanks, the invoice has been checked and the duplicate line removed."},"finish_reason":"stop"}],"usage":{"prompt_tokens":250,"completion_tokens":14,"total_tokens":264}}"#;

pub async fn start() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind stub");
    let port = listener.local_addr().expect("stub address").port();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(|_body: axum::body::Bytes| async { ([("content-type", "application/json")], ANSWER) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.expect("stub serves") });
    port
}
