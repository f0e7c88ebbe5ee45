use super::*;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples");

fn errors(text: &str) -> Vec<ConfigError> {
    match load(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0,
    }
}

#[test]
fn every_example_in_deploy_examples_is_valid() {
    let mut seen = 0;
    for entry in std::fs::read_dir(EXAMPLES).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = load(&text) {
            panic!("{}: {e}", path.display());
        }
        seen += 1;
    }
    assert!(
        seen >= 7,
        "expected the guide's six examples plus policy-config.yaml, found {seen}"
    );
}

#[test]
fn guide_governed_example_has_the_declared_chain_and_targets() {
    let text = std::fs::read_to_string(format!("{EXAMPLES}/huggingface-governed.yaml")).unwrap();
    let loaded = load(&text).unwrap();
    let names: Vec<_> = loaded.pack.chain.iter().map(|p| p.name()).collect();
    assert_eq!(
        names,
        [
            "prompt-injection",
            "pii-detector",
            "safety-filter",
            "content-filter",
            "audit-logger"
        ]
    );
    assert_eq!(loaded.pack.targets.len(), 5);
    let dedicated = loaded.pack.target("hf-dedicated-llama-70b").unwrap();
    assert_eq!(dedicated.model, "meta-llama/Meta-Llama-3.1-70B-Instruct");
    assert_eq!(dedicated.protocol, Protocol::OpenAiCompatible);
    assert_eq!(dedicated.base_url_placeholder(), Some("{unique-id}"));
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.path == "providers.targets[4].base_url"),
        "{:?}",
        loaded.warnings
    );
    match &loaded.pack.chain[1] {
        Policy::PiiDetector(p) => {
            assert_eq!(p.action, Action::Redact);
            assert_eq!(
                p.entities,
                ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD"]
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn routing_example_routes_by_role_with_default() {
    let text = std::fs::read_to_string(format!("{EXAMPLES}/huggingface-routing.yaml")).unwrap();
    let pack = load(&text).unwrap().pack;
    let router = pack.router().unwrap();
    assert_eq!(
        router.route(Some("production")),
        Some("hf-dedicated-llama-70b")
    );
    assert_eq!(router.route(Some("developer")), Some("hf-llama-8b"));
    assert_eq!(router.route(Some("intern")), Some("hf-llama-8b"));
    assert_eq!(router.route(None), Some("hf-llama-8b"));
}

#[test]
fn embeddings_example_is_feature_extraction() {
    let text = std::fs::read_to_string(format!("{EXAMPLES}/huggingface-providers-6.yaml")).unwrap();
    let pack = load(&text).unwrap().pack;
    let t = &pack.targets[0];
    assert_eq!(t.protocol, Protocol::FeatureExtraction);
    assert_eq!(t.model, "BAAI/bge-large-en-v1.5");
    assert!(t.serves_embeddings() && !t.serves_chat());
}

const BASE: &str = "pack:\n  name: p\nproviders:\n  targets:\n    - id: a\n      provider: huggingface:chat:org/m\n      secret_key_ref:\n        env: HF_API_TOKEN\n";

#[test]
fn unknown_keys_are_reported_with_path_position_and_suggestion() {
    let text = BASE.replace("        env: HF_API_TOKEN", "        evn: HF_API_TOKEN");
    let errs = errors(&text);
    let e = errs
        .iter()
        .find(|e| e.path == "providers.targets[0].secret_key_ref.evn")
        .expect("unknown key error");
    assert_eq!((e.line, e.column), (8, 9));
    assert!(e.message.contains("did you mean 'env'"), "{}", e.message);
}

#[test]
fn all_errors_are_reported_at_once() {
    let text = format!(
        "{BASE}      timeout_seconds: soon\npolicies:\n  chain: [pii-detectr, router]\n  policy:\n    router:\n      rules:\n        - when_role: prod\n          target: nowhere\n"
    );
    let errs = errors(&text);
    let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"providers.targets[0].timeout_seconds"),
        "{paths:?}"
    );
    assert!(paths.contains(&"policies.chain[0]"), "{paths:?}");
    assert!(
        paths.contains(&"policies.policy.router.rules[0]"),
        "{paths:?}"
    );
    let chain_err = errs.iter().find(|e| e.path == "policies.chain[0]").unwrap();
    assert!(
        chain_err.message.contains("did you mean 'pii-detector'"),
        "{}",
        chain_err.message
    );
}

#[test]
fn format_without_provider_type_is_refused_and_vice_versa() {
    for (line, missing) in [
        ("      format: huggingface\n", "provider_type"),
        ("      provider_type: huggingface\n", "format"),
    ] {
        let errs = errors(&format!("{BASE}{line}"));
        assert!(
            errs.iter().any(|e| e.path == "providers.targets[0]"
                && e.message.contains(&format!("needs {missing}: huggingface"))),
            "{errs:?}"
        );
    }
    let ok = load(&format!(
        "{BASE}      format: huggingface\n      provider_type: huggingface\n"
    ))
    .unwrap();
    assert!(matches!(
        ok.pack.targets[0].protocol,
        Protocol::TgiNative { .. }
    ));
}

#[test]
fn openai_targets_need_a_base_url_and_huggingface_targets_a_secret() {
    let errs = errors(
        "providers:\n  targets:\n    - id: v\n      provider: openai:qwen\n    - id: h\n      provider: huggingface:chat:o/m\n",
    );
    assert!(
        errs.iter()
            .any(|e| e.path == "providers.targets[0]" && e.message.contains("needs a base_url")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.path == "providers.targets[1]" && e.message.contains("secret_key_ref.env")),
        "{errs:?}"
    );
}

#[test]
fn duplicate_target_ids_and_bad_entities_are_errors() {
    let text = format!(
        "{BASE}    - id: a\n      provider: openai:x\n      base_url: http://h/v1\npolicies:\n  chain: [pii-detector]\n  policy:\n    pii-detector:\n      entities: [EMAIL, PERSON]\n"
    );
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.message.contains("duplicate target id 'a'")),
        "{errs:?}"
    );
    let e = errs
        .iter()
        .find(|e| e.path == "policies.policy.pii-detector.entities[0]")
        .unwrap();
    assert!(e.message.contains("EMAIL_ADDRESS"), "{}", e.message);
}

#[test]
fn syntax_errors_carry_a_position() {
    let errs = errors("pack:\n  name: [unclosed\n");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].message.starts_with("not valid YAML"),
        "{}",
        errs[0].message
    );
    assert!(errs[0].line >= 2);
}

#[test]
fn client_keys_never_accept_a_key_in_clear() {
    let text = format!(
        "{BASE}clients:\n  keys:\n    - id: k\n      role: dev\n      key_sha256: sk-plaintext-key\n"
    );
    let errs = errors(&text);
    assert!(
        errs.iter().any(|e| e.path == "clients.keys[0].key_sha256"),
        "{errs:?}"
    );
    assert!(
        errs.iter().all(|e| !e.message.contains("sk-plaintext-key")),
        "an error echoed the secret: {errs:?}"
    );
}

#[test]
fn local_targets_name_workers() {
    let pack = load("providers:\n  targets:\n    - id: l\n      provider: local:huggingface:org/m@v1.2\n      workers: [\"w-0:50051\", \"sluice-worker.ns.svc:50051\"]\n")
        .unwrap()
        .pack;
    let t = &pack.targets[0];
    assert_eq!(t.family, Family::Local);
    let Protocol::Worker { workers, revision } = &t.protocol else {
        panic!("not a worker target: {:?}", t.protocol)
    };
    assert_eq!(t.model, "org/m");
    assert_eq!(revision.as_deref(), Some("v1.2"));
    assert_eq!(workers, &["w-0:50051", "sluice-worker.ns.svc:50051"]);

    let errs =
        errors("providers:\n  targets:\n    - id: l\n      provider: local:huggingface:org/m\n");
    assert!(errs[0].message.contains("need workers"), "{errs:?}");
    let errs = errors(
        "providers:\n  targets:\n    - id: l\n      provider: local:huggingface:org/m\n      workers: [\"w-0\"]\n      base_url: http://x/v1\n",
    );
    assert!(errs.iter().any(|e| e.path == "providers.targets[0].workers[0]" && e.message.contains("host:port")), "{errs:?}");
    assert!(
        errs.iter()
            .any(|e| e.path == "providers.targets[0].base_url"),
        "{errs:?}"
    );
    for bad in ["org/../m@main", "org/m@", "org/m@refs/pr/1", "@v1", "a/b/c"] {
        let errs = errors(&format!(
            "providers:\n  targets:\n    - id: l\n      provider: local:huggingface:{bad}\n      workers: [\"w:1\"]\n"
        ));
        assert!(
            errs.iter()
                .any(|e| e.path == "providers.targets[0].provider"),
            "{bad}: {errs:?}"
        );
    }
    let errs = errors(
        "providers:\n  targets:\n    - id: l\n      provider: local:org/m\n      workers: [\"w:1\"]\n",
    );
    assert!(
        errs[0].message.contains("local:huggingface:ORG/MODEL"),
        "{errs:?}"
    );
}

#[test]
fn json_packs_validate_like_yaml() {
    let json = r#"{"pack": {"name": "j"}, "providers": {"targets": [{"id": "o", "provider": "openai:gpt", "base_url": "http://127.0.0.1:1/v1"}]}}"#;
    let pack = load(json).unwrap().pack;
    assert_eq!(pack.targets[0].model, "gpt");
    assert_eq!(pack.targets[0].family, Family::OpenAi);
}

#[test]
fn router_rules_must_name_chat_targets() {
    let text = format!(
        "{BASE}    - id: emb\n      provider: huggingface\n      model: org/emb\n      secret_key_ref:\n        env: HF_API_TOKEN\npolicies:\n  chain: [router]\n  policy:\n    router:\n      rules:\n        - when_role: search\n          target: emb\n"
    );
    let errs = errors(&text);
    let e = errs
        .iter()
        .find(|e| e.path == "policies.policy.router.rules[0]")
        .expect("router error");
    assert!(e.message.contains("embeddings only"), "{}", e.message);
}

#[test]
fn limits_are_validated_with_their_paths() {
    let base = "providers:\n  targets:\n    - id: a\n      provider: openai:m\n      base_url: http://h/v1\nlimits:\n";
    let errs = errors(&format!(
        "{base}  - name: x\n    scope: key\n    concurrent: 3\n  - name: y\n    scope: tenant\n    requests_per_minute: 0\n  - scope: target\n    targets: [b]\n    concurrent: 2\n  - name: x\n    scope: global\n    concurrent: 1\n  - scope: key\n"
    ));
    let has = |path: &str, needle: &str| {
        errs.iter()
            .any(|e| e.path == path && e.message.contains(needle))
    };
    assert!(has("limits[4]", "needs at least one of"), "{errs:?}");
    assert!(has("limits[1].scope", "unknown value 'tenant'"), "{errs:?}");
    assert!(
        has("limits[1].requests_per_minute", "out of range"),
        "{errs:?}"
    );
    assert!(
        has("limits[2].targets[0]", "no target has id 'b'"),
        "{errs:?}"
    );
    assert!(
        has("limits[3].name", "duplicate limit name 'x'"),
        "{errs:?}"
    );

    let ok = load(&format!(
        "{base}  - scope: role\n    roles: [apps]\n    tokens_per_day: 1000\n"
    ))
    .unwrap();
    let l = &ok.pack.limits[0];
    assert_eq!((l.name.as_str(), l.scope), ("limits[0]", LimitScope::Role));
    assert_eq!(l.tokens_per_day, Some(1000));
}

#[test]
fn the_groups_example_reads_as_written() {
    let text = std::fs::read_to_string(format!("{EXAMPLES}/groups-and-budgets.yaml")).unwrap();
    let pack = load(&text).unwrap().pack;
    let g = &pack.groups[0];
    assert_eq!(g.id, "llama-70b");
    assert_eq!(g.balance, Balance::PeakEwma);
    assert_eq!(
        g.members,
        [
            Member {
                target: "llama-70b-a".into(),
                weight: 2
            },
            Member {
                target: "llama-70b-b".into(),
                weight: 1
            }
        ]
    );
    assert!(g.serves_chat && !g.serves_embeddings);
    assert_eq!(g.fallbacks, ["hf-llama-8b"]);
    assert_eq!(pack.budgets[0].max_cost_micros, Some(200_000_000));
    assert_eq!(pack.budgets[1].action, Action::Monitor);
    assert_eq!(
        pack.targets[2].pricing.map(|p| p.micros(1_000_000, 0)),
        Some(100_000)
    );
}

#[test]
fn group_members_and_fallbacks_are_checked_against_the_targets() {
    let base = "providers:\n  targets:\n    - id: a\n      provider: openai:m\n      base_url: http://h/v1\n    - id: b\n      provider: openai:m\n      base_url: http://h/v1\n  groups:\n";
    let errs = errors(&format!(
        "{base}    - id: g\n      model: a\n      members: [a, a]\n      balance: fastest\n      fallbacks: [a, zz]\n    - id: h\n      members: []\n"
    ));
    let has = |path: &str, needle: &str| {
        errs.iter()
            .any(|e| e.path == path && e.message.contains(needle))
    };
    assert!(
        has("providers.groups[0].members[1]", "listed twice"),
        "{errs:?}"
    );
    assert!(
        has("providers.groups[0].balance", "unknown value 'fastest'"),
        "{errs:?}"
    );
    assert!(
        has(
            "providers.groups[0].fallbacks[0]",
            "is a member of this group"
        ),
        "{errs:?}"
    );
    assert!(
        has("providers.groups[0].fallbacks[1]", "no target has id 'zz'"),
        "{errs:?}"
    );
    assert!(
        has("providers.groups[1].members", "at least one member"),
        "{errs:?}"
    );
}

#[test]
fn router_provider_choice_is_split_from_the_model() {
    let pack = |provider: &str, extra: &str| {
        format!(
            "pack:\n  name: t\nproviders:\n  targets:\n    - id: a\n      provider: {provider}\n      secret_key_ref: {{env: HF_API_TOKEN}}\n{extra}"
        )
    };
    let loaded = load(&pack("huggingface:chat:org/m:fastest", "")).unwrap();
    let t = loaded.pack.target("a").unwrap();
    assert_eq!(t.model, "org/m");
    assert_eq!(t.hf_route.as_deref(), Some("fastest"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    // On a dedicated endpoint the suffix goes nowhere useful: a warning.
    let loaded = load(&pack(
        "huggingface:chat:org/m:together",
        "      base_url: https://e.example/v1\n",
    ))
    .unwrap();
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.path == "providers.targets[0].provider"
                && w.message.contains("'org/m:together'")),
        "{:?}",
        loaded.warnings
    );

    let errs = errors(&pack("'huggingface:chat:org/m:'", ""));
    assert!(
        errs.iter()
            .any(|e| e.path == "providers.targets[0].provider"
                && e.message.contains("not a provider choice")),
        "{errs:?}"
    );
    let errs = errors(&pack(
        "huggingface:chat:org/m:fastest",
        "      format: huggingface\n      provider_type: huggingface\n      base_url: https://e.example\n",
    ));
    assert!(
        errs.iter().any(|e| e
            .message
            .contains("TGI-native targets (format: huggingface) take none")),
        "{errs:?}"
    );
}

/// Operators come from Presidio (and LiteLLM's Presidio integration): its
/// entity names are accepted where they mean one of ours, and the ones
/// Sluice does not detect are named as such rather than "unknown".
#[test]
fn presidio_entity_names_are_aliases_or_explained() {
    let pack = |entities: &str| {
        format!(
            "{BASE}policies:\n  chain: [pii-detector]\n  policy:\n    pii-detector:\n      entities: [{entities}]\n"
        )
    };
    let loaded = load(&pack("IBAN_CODE, EMAIL_ADDRESS")).unwrap();
    match &loaded.pack.chain[0] {
        Policy::PiiDetector(p) => assert_eq!(p.entities, ["IBAN", "EMAIL_ADDRESS"]),
        other => panic!("{other:?}"),
    }
    let errs = errors(&pack("PERSON, LOCATION"));
    let e = errs
        .iter()
        .find(|e| e.path == "policies.policy.pii-detector.entities[1]")
        .unwrap_or_else(|| panic!("{errs:?}"));
    assert!(
        e.message.contains("Presidio entity 'LOCATION'")
            && e.message.contains("does not detect")
            && e.message.contains("IP_ADDRESS"),
        "{}",
        e.message
    );
}

#[test]
fn tokenizer_defaults_to_the_hub_model_and_can_be_named_or_turned_off() {
    let pack = |extra: &str| {
        format!(
            "providers:\n  targets:\n    - id: hf\n      provider: huggingface:chat:org/chat-model\n      secret_key_ref: {{env: HF_TOKEN}}\n{extra}    - id: oa\n      provider: openai:gpt-4o\n      base_url: http://127.0.0.1:9/v1\n      secret_key_ref: {{env: OPENAI_API_KEY}}\n"
        )
    };
    let loaded = load(&pack("")).unwrap();
    let hf = loaded.pack.target("hf").unwrap();
    assert_eq!(
        hf.tokenizer,
        Some(TokenizerSource {
            repo: "org/chat-model".into(),
            revision: None
        })
    );
    assert_eq!(loaded.pack.target("oa").unwrap().tokenizer, None);

    let named = load(&pack("      tokenizer: org/other@v1.0\n")).unwrap();
    assert_eq!(
        named.pack.target("hf").unwrap().tokenizer,
        Some(TokenizerSource {
            repo: "org/other".into(),
            revision: Some("v1.0".into())
        })
    );
    let off = load(&pack("      tokenizer: none\n")).unwrap();
    assert_eq!(off.pack.target("hf").unwrap().tokenizer, None);

    let bad = errors(&pack("      tokenizer: not a repo\n"));
    assert_eq!(bad[0].path, "providers.targets[0].tokenizer", "{bad:?}");
    assert!(bad[0].message.contains("ORG/MODEL"), "{bad:?}");
    let bad_rev = errors(&pack("      tokenizer: org/m@../x\n"));
    assert!(bad_rev[0].message.contains("not clean"), "{bad_rev:?}");
}
