/// The parsed template: statements over expressions, as Jinja2's parser builds them.
indirect enum Expr {
    case constant(Value)
    case name(String)
    case list([Expr])
    case tuple([Expr])
    case dict([(Expr, Expr)])
    case attribute(Expr, String)
    case item(Expr, Expr)
    case slice(Expr, start: Expr?, stop: Expr?, step: Expr?)
    case call(Expr, Arguments)
    case filter(Expr, name: String, Arguments)
    case test(Expr, name: String, Arguments, negated: Bool)
    case not(Expr)
    case negate(Expr)
    case plus(Expr)
    case binary(BinaryOp, Expr, Expr)
    case compare(Expr, [(CompareOp, Expr)])
    case and(Expr, Expr)
    case or(Expr, Expr)
    /// `a if cond else b`; without `else` the value is undefined when cond is false.
    case conditional(condition: Expr, then: Expr, otherwise: Expr?)
    /// Marks the line of the expression inside it, for error messages.
    case located(Expr, line: Int)
}

struct Arguments {
    var positional: [Expr] = []
    var keyword: [(String, Expr)] = []
}

enum BinaryOp: String { case add = "+", subtract = "-", multiply = "*", divide = "/", floorDivide = "//", modulo = "%", power = "**", concat = "~" }
enum CompareOp: String { case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">=", `in` = "in", notIn = "not in" }

/// What `set` and `for` assign to.
enum Target {
    case name(String)
    case tuple([Target])
    /// `ns.attribute` (namespace objects only).
    case attribute(String, String)
}

struct Parameter {
    let name: String
    let defaultValue: Expr?
}

indirect enum Statement {
    case text(String)
    case output(Expr, line: Int)
    case ifChain([(condition: Expr, body: [Statement])], otherwise: [Statement], line: Int)
    case forLoop(target: Target, iterable: Expr, condition: Expr?, body: [Statement], otherwise: [Statement], recursive: Bool, line: Int)
    case set(Target, Expr, line: Int)
    case setBlock(Target, filters: [(String, Arguments)], body: [Statement], line: Int)
    case macro(name: String, parameters: [Parameter], body: [Statement], line: Int)
    case callBlock(call: Expr, parameters: [Parameter], body: [Statement], line: Int)
    case filterBlock(filters: [(String, Arguments)], body: [Statement], line: Int)
    case with(assignments: [(Target, Expr)], body: [Statement], line: Int)
    case loopBreak(line: Int)
    case loopContinue(line: Int)
    /// `{% generation %}`: the body, unchanged (transformers marks assistant text with it).
    case generation([Statement])
}
