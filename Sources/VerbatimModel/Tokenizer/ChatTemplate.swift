@_exported import VerbatimTemplate

/// Who speaks a chat message. The four common roles are cases; any other role a template
/// understands (`developer`, `ipython`, ...) goes through `custom`.
public enum ChatRole: Sendable, Hashable, Codable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// Instructions that frame the conversation (`system`).
    case system
    /// The person's turns (`user`).
    case user
    /// The model's turns (`assistant`).
    case assistant
    /// A tool's result, passed back to the model (`tool`).
    case tool
    /// Any other role, by the name the template sees.
    case custom(String)

    /// The role called `name`: the case of that name for the four common roles, else `custom(name)`.
    public init(_ name: String) {
        switch name {
        case "system": self = .system
        case "user": self = .user
        case "assistant": self = .assistant
        case "tool": self = .tool
        default: self = .custom(name)
        }
    }

    public init(stringLiteral value: String) { self.init(value) }

    /// The role's name as templates see it (`message['role']`).
    public var name: String {
        switch self {
        case .system: "system"
        case .user: "user"
        case .assistant: "assistant"
        case .tool: "tool"
        case .custom(let name): name
        }
    }

    public var description: String { name }

    public init(from decoder: any Decoder) throws { self.init(try decoder.singleValueContainer().decode(String.self)) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(name)
    }
}

/// A chat message for the model's chat template.
public struct ChatMessage: Sendable, Equatable, Codable {
    /// Who speaks (`message['role']` in the template).
    public var role: ChatRole
    /// The message text (`message['content']`); caller data, never parsed as control tokens.
    public var content: String
    /// A message of `role` with text `content`.
    public init(role: ChatRole, content: String) { self.role = role; self.content = content }
}

/// How a chat becomes a prompt, beyond its messages.
public struct ChatOptions: Sendable, Equatable {
    /// End with the template's cue for the assistant's turn (`add_generation_prompt`).
    public var addGenerationPrompt: Bool
    /// A template to use instead of the model's own (required for a model without one).
    public var template: ChatTemplate?
    /// Further template variables (`tools`, `enable_thinking`, `date_string`, ...): caller data,
    /// never parsed as control tokens.
    public var variables: [String: TemplateValue]
    /// What `strftime_now` sees; nil is the current local time. Fix it when the prompt (and so
    /// the cache key) must not change with the date.
    public var now: CalendarTime?

    /// Options that default to a generation prompt, the model's own template, no extra variables and the current local time.
    public init(addGenerationPrompt: Bool = true, template: ChatTemplate? = nil,
                variables: [String: TemplateValue] = [:], now: CalendarTime? = nil) {
        self.addGenerationPrompt = addGenerationPrompt
        self.template = template
        self.variables = variables
        self.now = now
    }
}

/// A model's chat template (`tokenizer.chat_template`, Jinja), rendered exactly as Python's
/// Jinja2 renders it for transformers. The template's own text may hold control tokens
/// (`<|im_start|>`); message content never becomes one (see ``RenderedText``).
public struct ChatTemplate: Sendable, Equatable {
    /// The template's Jinja text; two templates are equal when their texts are.
    public let source: String
    let template: Template

    /// Parses `source`; throws `TemplateError` when it does not parse.
    public init(source: String) throws(TemplateError) {
        self.source = source
        template = try Template(source)
    }

    public static func == (a: ChatTemplate, b: ChatTemplate) -> Bool { a.source == b.source }

    /// The prompt text with which parts came from the messages and variables.
    /// `bos`/`eos` are the model's `bos_token`/`eos_token` strings.
    public func render(_ messages: [ChatMessage], options: ChatOptions = ChatOptions(),
                       bos: String?, eos: String?) throws(TemplateError) -> RenderedText {
        var variables = options.variables
        variables["messages"] = .array(messages.map {
            .object([TemplateObjectEntry("role", .string($0.role.name)), TemplateObjectEntry("content", .string($0.content))])
        })
        variables["add_generation_prompt"] = .bool(options.addGenerationPrompt)
        if let bos { variables["bos_token"] = .trustedString(bos) }
        if let eos { variables["eos_token"] = .trustedString(eos) }
        return try template.render(variables, now: options.now)
    }
}

extension Tokenizer {
    /// The model's template, or a clear error when it has none or it does not parse.
    public func chatTemplate(_ override: ChatTemplate?) throws(TokenizerError) -> ChatTemplate {
        if let override { return override }
        if let chatTemplate { return chatTemplate }
        if let chatTemplateError {
            throw TokenizerError(.unsupportedChatTemplate, "the model's chat template cannot be used: \(chatTemplateError)")
        }
        throw TokenizerError(.unsupportedChatTemplate, "the model has no chat template (tokenizer.chat_template); supply one")
    }

    /// The chat prompt as text, exactly as the template renders it.
    public func renderChat(_ messages: [ChatMessage], options: ChatOptions = ChatOptions()) throws(TokenizerError) -> RenderedText {
        let template = try chatTemplate(options.template)
        guard !messages.isEmpty else { throw TokenizerError(.invalidMessage, "a chat needs at least one message") }
        for m in messages where m.role.name.isEmpty {
            throw TokenizerError(.invalidMessage, "a message role cannot be empty")
        }
        func text(_ id: TokenID?) -> String? { id.map { tokens[Int($0)] } }
        do {
            return try template.render(messages, options: options, bos: text(bosID), eos: text(eosID))
        } catch {
            let code: TokenizerError.Code = error.code == .raised ? .templateRaised : .templateFailed
            throw TokenizerError(code, error.code == .raised ? error.message : error.description)
        }
    }

    /// Tokens of a chat prompt rendered by the model's template (or `options.template`).
    /// Control tokens are recognised only in the template's own text, so a message holding
    /// "<|im_end|>" cannot end its turn early; whenever no message holds control-token text,
    /// the tokens equal those of encoding the rendered text with special parsing. The model's
    /// BOS is added (per `add_bos_token`) unless the template already wrote it. `budget`
    /// bounds the encoding of the rendered text (rendering has its own `TemplateLimits`).
    public func encodeChat(_ messages: [ChatMessage], options: ChatOptions = ChatOptions(),
                           budget: EncodeBudget? = nil) throws(TokenizerError) -> [TokenID] {
        try encode(try renderChat(messages, options: options), budget: budget)
    }
}
