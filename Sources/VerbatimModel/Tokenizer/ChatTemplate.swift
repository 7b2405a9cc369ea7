/// A chat message for the model's chat template.
public struct ChatMessage: Sendable, Equatable, Codable {
    public var role: String
    public var content: String
    public init(role: String, content: String) { self.role = role; self.content = content }
}

/// The chat templates Verbatim renders: ChatML (`<|im_start|>role\ncontent<|im_end|>\n`),
/// optionally with a default system message inserted when the first message is not a
/// system message (SmolLM2's template). A template is recognised only when its Jinja text
/// is exactly one of these forms, so an unknown template is an error, never a wrong prompt.
public struct ChatTemplate: Sendable, Equatable {
    /// The system message added when the conversation does not start with one.
    public let defaultSystemMessage: String?

    static let messageLoop = "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    static let withDefaultSystemPrefix = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    static let withDefaultSystemMiddle = "<|im_end|>\n' }}{% endif %}"
    static let plainPrefix = "{% for message in messages %}"

    public init(defaultSystemMessage: String?) { self.defaultSystemMessage = defaultSystemMessage }

    /// Recognises a template's Jinja source; nil when it is not a supported form.
    public init?(recognizing source: String) {
        let suffix = Self.withDefaultSystemMiddle + Self.messageLoop
        if source.hasPrefix(Self.withDefaultSystemPrefix), source.hasSuffix(suffix),
           source.count >= Self.withDefaultSystemPrefix.count + suffix.count {
            let system = String(source.dropFirst(Self.withDefaultSystemPrefix.count).dropLast(suffix.count))
            // Inside a Jinja string literal: quotes, backslashes or braces would need parsing.
            guard !system.contains(where: { "'\"\\{}%".contains($0) }) else { return nil }
            self.defaultSystemMessage = system
        } else if source == Self.plainPrefix + Self.messageLoop {
            self.defaultSystemMessage = nil
        } else {
            return nil
        }
    }

    /// One piece of a rendered prompt: literal text, or a control token by its text.
    public enum Part: Sendable, Equatable {
        case text(String)
        case control(String)
    }

    /// The prompt as parts, so that message content can never become a control token.
    public func parts(_ messages: [ChatMessage], addGenerationPrompt: Bool) -> [Part] {
        var parts: [Part] = []
        func turn(_ role: String, _ content: String) {
            parts += [.control("<|im_start|>"), .text(role + "\n" + content), .control("<|im_end|>"), .text("\n")]
        }
        for (i, message) in messages.enumerated() {
            if i == 0, message.role != "system", let system = defaultSystemMessage { turn("system", system) }
            turn(message.role, message.content)
        }
        if addGenerationPrompt { parts += [.control("<|im_start|>"), .text("assistant\n")] }
        return parts
    }

    /// The prompt as text, exactly as the Jinja template renders it.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool) -> String {
        parts(messages, addGenerationPrompt: addGenerationPrompt).map {
            switch $0 { case .text(let t), .control(let t): t }
        }.joined()
    }
}

extension Tokenizer {
    /// Tokens of a chat prompt rendered by the model's template. The template's own markers
    /// are control tokens; message content is always plain text, so a message containing
    /// "<|im_end|>" cannot end its turn early. Text between two markers is encoded as one
    /// run, so the tokens equal those of encoding the rendered text with special parsing
    /// whenever the content holds no control-token text.
    public func encodeChat(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) throws(TokenizerError) -> [TokenID] {
        guard let template = chatTemplate else {
            if let source = chatTemplateSource {
                throw TokenizerError(.unsupportedChatTemplate,
                                     "the model's chat template is not a supported form (ChatML); it begins: \(source.prefix(80))")
            }
            throw TokenizerError(.unsupportedChatTemplate, "the model has no chat template")
        }
        guard !messages.isEmpty else { throw TokenizerError(.invalidMessage, "a chat needs at least one message") }
        for m in messages where m.role.isEmpty || m.role.contains("\n") || m.role.contains("<|") {
            throw TokenizerError(.invalidMessage, "invalid role '\(m.role)'")
        }
        var out: [TokenID] = []
        if addBOS, let bos = bosID { out.append(bos) }
        var text = ""
        func flush() {
            let scalars = Array(text.unicodeScalars)
            encodeText(scalars, 0..<scalars.count, into: &out)
            text = ""
        }
        for part in template.parts(messages, addGenerationPrompt: addGenerationPrompt) {
            switch part {
            case .text(let t): text += t
            case .control(let marker):
                guard let id = encode(marker, parseSpecial: true, addBOS: false).first,
                      encode(marker, parseSpecial: true, addBOS: false).count == 1, isControl(id) else {
                    throw TokenizerError(.unsupportedChatTemplate, "the vocabulary has no control token \(marker)")
                }
                flush()
                out.append(id)
            }
        }
        flush()
        return out
    }
}
