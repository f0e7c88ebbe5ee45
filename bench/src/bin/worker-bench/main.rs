//! Worker overhead: time to first token and decode tokens/s through the
//! worker's gRPC (a real tonic server and client on loopback) against
//! mistral.rs called in-process on the same model, in the same run.
//!
//! The model is a random-weight Llama written by the test generator
//! (`--shape small`, ~25 M parameters, by default; `tiny` for a smoke run).
//! Requests alternate A/B so drift on a shared machine hits both sides.
//!
//!     cargo run --release -p sluice-bench --bin worker-bench [-- --requests 20 --tokens 128]

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use either::Either;
use mistralrs::{
    Constraint, MessageContent, NormalRequest, Request, RequestMessage, Response, SamplingParams,
    TextModelBuilder, TokenSource,
};
use sluice_e2e::tiny_model;
use sluice_inference_worker::device::DeviceChoice;
use sluice_inference_worker::engine::{DtypeChoice, LoadOptions};
use sluice_inference_worker::metrics::Metrics;
use sluice_inference_worker::service::{ServedModel, WorkerState};
use sluice_proto::wire::inference_client::InferenceClient;
use sluice_proto::wire::{ChatTurn, GenerateRequest, generate_response};

#[derive(Parser)]
struct Args {
    /// Requests per side.
    #[arg(long, default_value_t = 20)]
    requests: usize,
    /// Completion tokens per request.
    #[arg(long, default_value_t = 128)]
    tokens: usize,
    /// tiny or small.
    #[arg(long, default_value = "small")]
    shape: String,
}

#[derive(Default)]
struct Side {
    ttft: Vec<Duration>,
    decode_tps: Vec<f64>,
    /// The worker's own measurement of time to first token.
    inner_ttft: Vec<Duration>,
}

impl Side {
    fn record(&mut self, start: Instant, first: Instant, last: Instant, tokens: usize) {
        self.ttft.push(first - start);
        if tokens > 1 {
            self.decode_tps
                .push((tokens - 1) as f64 / (last - first).as_secs_f64());
        }
    }
}

fn median<T: Copy + PartialOrd>(v: &[T]) -> T {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[s.len() / 2]
}

const PROMPT: &str = "Write a long story about a lighthouse keeper and the sea.";

async fn in_process(model: &mistralrs::Model, tokens: usize, side: &mut Side) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(tokens + 8);
    let msg = indexmap::IndexMap::from([
        ("role".to_string(), Either::Left("user".to_string())),
        ("content".to_string(), Either::Left(PROMPT.to_string())),
    ]);
    let messages: Vec<indexmap::IndexMap<String, MessageContent>> = vec![msg];
    let req = Request::Normal(Box::new(NormalRequest {
        messages: RequestMessage::Chat {
            messages,
            enable_thinking: None,
            reasoning_effort: None,
        },
        sampling_params: SamplingParams {
            temperature: Some(0.0),
            max_len: Some(tokens),
            ..SamplingParams::neutral()
        },
        response: tx,
        return_logprobs: false,
        is_streaming: true,
        id: model.inner().next_request_id(),
        constraint: Constraint::None,
        suffix: None,
        tools: None,
        tool_choice: None,
        logits_processors: None,
        return_raw_logits: false,
        web_search_options: None,
        model_id: None,
        truncate_sequence: false,
    }));
    let start = Instant::now();
    model
        .inner()
        .get_sender(None)
        .unwrap()
        .send(req)
        .await
        .unwrap();
    let (mut first, mut last, mut n) = (None, start, 0);
    while let Some(r) = rx.recv().await {
        match r {
            Response::Chunk(c) => {
                let Some(choice) = c.choices.first() else {
                    continue;
                };
                if choice
                    .delta
                    .content
                    .as_deref()
                    .is_some_and(|t| !t.is_empty())
                {
                    n += 1;
                    last = Instant::now();
                    first.get_or_insert(last);
                }
                if choice.finish_reason.is_some() {
                    break;
                }
            }
            _ => panic!("in-process generation failed"),
        }
    }
    side.record(start, first.expect("a token"), last, n);
}

async fn through_grpc(
    client: &mut InferenceClient<tonic::transport::Channel>,
    tokens: usize,
    side: &mut Side,
) {
    let start = Instant::now();
    let mut stream = client
        .generate(GenerateRequest {
            request_id: "bench".into(),
            messages: vec![ChatTurn {
                role: "user".into(),
                content: PROMPT.into(),
            }],
            max_tokens: Some(tokens as u32),
            temperature: Some(0.0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (mut first, mut last, mut n) = (None, start, 0);
    while let Some(m) = stream.message().await.unwrap() {
        match m.event {
            Some(generate_response::Event::Text(_)) => {
                n += 1;
                last = Instant::now();
                first.get_or_insert(last);
            }
            Some(generate_response::Event::Finish(f)) => {
                side.inner_ttft
                    .push(Duration::from_micros(f.time_to_first_token_us));
                break;
            }
            None => {}
        }
    }
    side.record(start, first.expect("a token"), last, n);
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let shape = match args.shape.as_str() {
        "tiny" => tiny_model::TINY,
        "small" => tiny_model::SMALL,
        other => anyhow::bail!("unknown shape {other}: tiny or small"),
    };
    let dir = std::env::temp_dir().join(format!("sluice-worker-bench-{}", std::process::id()));
    tiny_model::write_safetensors_model_shaped(&dir, 5, &shape)?;
    // SAFETY: before any other thread reads the environment.
    unsafe { std::env::set_var("HF_HOME", dir.join("hf")) };

    // Baseline: mistral.rs in-process.
    let model = TextModelBuilder::new(dir.to_string_lossy())
        .with_token_source(TokenSource::None)
        .with_dtype(mistralrs::ModelDType::F32)
        .with_max_num_seqs(1) // as the worker is configured below
        .with_force_cpu()
        .build()
        .await?;

    // The worker: our engine behind the real gRPC service on loopback.
    let state = WorkerState::new(
        ServedModel {
            model_id: "bench".into(),
            max_concurrency: 1,
            max_queue: 16,
        },
        Arc::new(Metrics::new("bench")),
    );
    let opts = LoadOptions {
        dir: dir.clone(),
        gguf_file: None,
        device: DeviceChoice::Cpu,
        dtype: DtypeChoice::F32,
        max_concurrency: 1,
    };
    sluice_inference_worker::load(&state, &opts).await?;
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = grpc.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sluice_inference_worker::run(
        grpc,
        http,
        None,
        state,
        async { Ok(()) },
        async {
            let _ = stop_rx.await;
        },
    ));
    let mut client = InferenceClient::connect(format!("http://{addr}")).await?;

    // Warm-up both sides.
    let (mut a, mut b) = (Side::default(), Side::default());
    in_process(&model, 8, &mut Side::default()).await;
    through_grpc(&mut client, 8, &mut Side::default()).await;
    for i in 0..args.requests {
        if i % 2 == 0 {
            in_process(&model, args.tokens, &mut a).await;
            through_grpc(&mut client, args.tokens, &mut b).await;
        } else {
            through_grpc(&mut client, args.tokens, &mut b).await;
            in_process(&model, args.tokens, &mut a).await;
        }
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&dir);

    let (ta, tb) = (median(&a.ttft), median(&b.ttft));
    let (da, db) = (median(&a.decode_tps), median(&b.decode_tps));
    println!(
        "model: random-weight Llama ({} shape: hidden {}, {} layers), CPU f32, {} requests x {} tokens per side, greedy",
        args.shape, shape.hidden, shape.layers, args.requests, args.tokens
    );
    println!("                       in-process mistral.rs   worker over gRPC   ratio");
    println!(
        "decode tokens/s (p50)  {da:>21.1}   {db:>16.1}   {:.3}  (target >= 0.97)",
        db / da
    );
    println!(
        "time to first token    {:>18.2} ms   {:>13.2} ms   {:.3}  (in-process / worker; target >= 0.97)",
        ta.as_secs_f64() * 1000.0,
        tb.as_secs_f64() * 1000.0,
        ta.as_secs_f64() / tb.as_secs_f64()
    );
    println!(
        "(the worker's own measurement of time to first token, accept to first piece: {:.2} ms)",
        median(&b.inner_ttft).as_secs_f64() * 1000.0
    );
    Ok(())
}
