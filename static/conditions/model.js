// The rule builder's model: groups and rules, and the stored tree they stand for.
//
// toTree() turns the builder's groups and rules into the stored condition
// tree ({"all": [...]}, {"kind": ..., params}) and fromTree() reads one back,
// raising Unsupported for a tree the builder cannot show. builder.js draws
// the model and tests/conditions/test_builder_model.py runs these functions
// over every kind of the vocabulary. Nothing here touches the page.

export const PARAM_LABELS = {
  after: "Counted from",
  course: "Course slug",
  days: "Days",
  direction: "Last or next",
  event: "Event name",
  features: "Features",
  lesson: "Lesson title",
  max: "Maximum",
  min: "Minimum",
  plans: "Plans",
  priorities: "Priorities",
  priority: "Priority",
  scope: "Counted over",
  stage: "Stage slug",
  status: "Status",
  survey: "Survey",
  topic: "Topics",
  value: "Value",
  where: "Contacts that match",
};

export const OPERATOR_LABELS = {
  ">": "> (greater than)",
  ">=": ">= (at least)",
  "<": "< (less than)",
  "<=": "<= (at most)",
  "==": "== (equal to)",
  "!=": "!= (not equal to)",
  in: "in (one of)",
};

/** A tree the builder cannot show; the CSM edits it as text instead. */
export class Unsupported extends Error {}

/** A rule or group that is not finished, so no tree can be sent yet. */
export class Incomplete extends Error {
  constructor(message, node) {
    super(message);
    this.node = node;
  }
}

let nextId = 1;

export function newGroup(op = "all") {
  return { type: "group", id: nextId++, op, negated: false, children: [] };
}

export function newRule() {
  return { type: "rule", id: nextId++, negated: false, choice: "", inputs: {} };
}

// -- the vocabulary ------------------------------------------------------------

/** Look-ups over the vocabulary of one subject type. */
export class Vocabulary {
  constructor(data, subject) {
    this.data = data;
    this.subject = subject;
    const entry = data.subjects[subject];
    this.kinds = new Map(entry.kinds.map((kind) => [kind.name, kind]));
    this.fields = new Map(entry.fields.map((field) => [field.path, field]));
  }

  forSubject(subject) {
    return subject === this.subject ? this : new Vocabulary(this.data, subject);
  }

  /** Return the field a path names and, for custom properties, the key. */
  resolveField(path) {
    if (this.fields.has(path) && this.fields.get(path).type !== "properties") {
      return { field: this.fields.get(path), key: null };
    }
    for (const field of this.fields.values()) {
      const prefix = `${field.path}.`;
      if (field.type === "properties" && path.startsWith(prefix)) {
        return { field, key: path.slice(prefix.length) };
      }
    }
    return null;
  }

  /** Return the kinds other than attribute, grouped by the data they read. */
  kindGroups() {
    const order = Object.keys(this.data.sources);
    const groups = new Map(order.map((source) => [source, []]));
    for (const kind of this.kinds.values()) {
      if (kind.name === "attribute") continue;
      const source = order.find((name) => kind.reads.includes(name)) || order[0];
      groups.get(source).push(kind);
    }
    return [...groups.entries()]
      .filter(([, members]) => members.length)
      .map(([source, members]) => ({
        label: capitalise(this.data.sources[source]),
        kinds: members.sort((a, b) => a.label.localeCompare(b.label)),
      }));
  }
}

export function capitalise(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Return the control that edits a parameter, which also decides how its text becomes a value. */
export function controlOf(param) {
  if (param.type === "NestedCondition") return "nested";
  if (param.written_as === "FieldSlot") return "date-field";
  if (param.type === "list") return param.choices ? "checkboxes" : "list";
  if (param.choices) return "select";
  if (param.type === "int" || param.type === "float") return "number";
  if (param.type === "bool") return "boolean";
  return "text";
}

// -- the builder's model to the stored tree -----------------------------------

/**
 * Turn a group of the builder into a condition tree.
 *
 * Every node reached is recorded in paths under the path that validation
 * errors name, such as $.all[1].where, so an error can point at its rule.
 * A top-level group of one rule is written as that rule alone, and an empty
 * top-level group as null, meaning an empty condition.
 */
export function toTree(group, vocabulary, paths, path = "$", topLevel = true) {
  if (topLevel && !group.negated && group.children.length <= 1) {
    if (!group.children.length) return null;
    return nodeToTree(group.children[0], vocabulary, paths, path);
  }
  return nodeToTree(group, vocabulary, paths, path);
}

function nodeToTree(node, vocabulary, paths, path) {
  paths.set(path, node);
  const innerPath = node.negated ? `${path}.not` : path;
  paths.set(innerPath, node);
  let tree;
  if (node.type === "group") {
    if (!node.children.length) {
      throw new Incomplete("this group is empty; add a rule or remove the group", node);
    }
    tree = {
      [node.op]: node.children.map((child, index) =>
        nodeToTree(child, vocabulary, paths, `${innerPath}.${node.op}[${index}]`),
      ),
    };
  } else {
    tree = ruleToTree(node, vocabulary, paths, innerPath);
  }
  return node.negated ? { not: tree } : tree;
}

function ruleToTree(rule, vocabulary, paths, path) {
  if (!rule.choice) {
    throw new Incomplete("choose a field or function for this rule", rule);
  }
  const [what, name] = splitChoice(rule.choice);
  if (what === "field") return attributeToTree(rule, vocabulary, name);

  const kind = vocabulary.kinds.get(name);
  const tree = { kind: kind.name };
  for (const param of kind.params) {
    const value = paramValue(rule, param, vocabulary, paths, `${path}.${param.name}`);
    if (value !== undefined) tree[param.name] = value;
  }
  return tree;
}

export function splitChoice(choice) {
  const at = choice.indexOf(":");
  return [choice.slice(0, at), choice.slice(at + 1)];
}

function paramValue(rule, param, vocabulary, paths, path) {
  const input = rule.inputs[param.name];
  const control = controlOf(param);
  if (control === "nested") {
    const nested = vocabulary.forSubject(param.subject || vocabulary.subject);
    const tree = toTree(input, nested, paths, path);
    if (tree === null) {
      throw new Incomplete(`add a rule under "${labelOf(param)}"`, rule);
    }
    return tree;
  }
  if (control === "checkboxes" || control === "list") {
    const items = control === "list" ? splitList(input) : input || [];
    return finish(rule, param, items.length ? items : undefined);
  }
  if (control === "number") {
    return finish(rule, param, parseNumber(rule, param, input));
  }
  if (control === "boolean") {
    return finish(rule, param, input ? input === "true" : undefined);
  }
  // Scalar: the stage of lifecycle_stage is one slug, or a list for 'in'.
  if (param.type === "Scalar" && rule.inputs.op === "in") {
    const items = splitList(input);
    return finish(rule, param, items.length ? items : undefined);
  }
  return finish(rule, param, input ? input : undefined);
}

function finish(rule, param, value) {
  if (value === undefined && param.required) {
    throw new Incomplete(`fill in "${labelOf(param)}"`, rule);
  }
  return value;
}

function parseNumber(rule, param, text) {
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!Number.isFinite(value)) {
    throw new Incomplete(`"${labelOf(param)}" must be a number, not ${text}`, rule);
  }
  if (param.type === "int" && !Number.isInteger(value)) {
    throw new Incomplete(`"${labelOf(param)}" must be a whole number, not ${text}`, rule);
  }
  return value;
}

function splitList(text) {
  return (text || "")
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
}

function attributeToTree(rule, vocabulary, path) {
  const field = vocabulary.fields.get(path);
  const inputs = rule.inputs;
  let fieldPath = path;
  if (field.type === "properties") {
    if (!inputs.key) throw new Incomplete("name the custom property", rule);
    fieldPath = `${path}.${inputs.key}`;
  }
  if (!inputs.op) throw new Incomplete("choose a comparison", rule);

  let value;
  if (inputs.op === "in") {
    const items = field.choices ? inputs.value || [] : splitList(inputs.value);
    if (!items.length) throw new Incomplete("give at least one value", rule);
    value = items.map((item) => typedValue(rule, field, item));
  } else {
    if (inputs.value === undefined || inputs.value === "") {
      throw new Incomplete("fill in the value", rule);
    }
    value = typedValue(rule, field, inputs.value);
  }
  return { kind: "attribute", field: fieldPath, op: inputs.op, value };
}

/** Turn a value's text into the JSON type the field compares with. */
function typedValue(rule, field, text) {
  const type = field.type === "properties" ? rule.inputs.valueType || "text" : field.type;
  if (type === "number") {
    const value = Number(text);
    if (text === "" || !Number.isFinite(value)) {
      throw new Incomplete(`the value must be a number, not ${text}`, rule);
    }
    return value;
  }
  if (type === "boolean") return text === true || text === "true";
  return text;
}

// -- the stored tree to the builder's model -----------------------------------

/** Read a condition tree into a top-level group; raise Unsupported. */
export function fromTree(tree, vocabulary) {
  const node = nodeFromTree(tree, vocabulary);
  if (node.type === "group") return node;
  const group = newGroup();
  group.children.push(node);
  return group;
}

function nodeFromTree(tree, vocabulary) {
  if ("not" in tree) {
    const node = nodeFromTree(tree.not, vocabulary);
    if (node.negated) {
      throw new Unsupported("it negates a negation (not not ...)");
    }
    node.negated = true;
    return node;
  }
  for (const op of ["all", "any"]) {
    if (op in tree) {
      const group = newGroup(op);
      group.children = tree[op].map((child) => nodeFromTree(child, vocabulary));
      return group;
    }
  }
  return ruleFromTree(tree, vocabulary);
}

function ruleFromTree(tree, vocabulary) {
  const rule = newRule();
  if (tree.kind === "attribute") {
    return attributeFromTree(rule, tree, vocabulary);
  }
  const kind = vocabulary.kinds.get(tree.kind);
  if (!kind) {
    throw new Unsupported(`kind ${tree.kind} does not apply to a ${vocabulary.subject}`);
  }
  rule.choice = `kind:${kind.name}`;
  for (const param of kind.params) {
    const value = tree[param.name];
    const control = controlOf(param);
    if (control === "nested") {
      const nested = vocabulary.forSubject(param.subject || vocabulary.subject);
      rule.inputs[param.name] = fromTree(value, nested);
    } else if (value === undefined || value === null) {
      rule.inputs[param.name] = control === "checkboxes" ? [] : "";
    } else if (control === "checkboxes") {
      rule.inputs[param.name] = [...value];
    } else if (Array.isArray(value)) {
      rule.inputs[param.name] = joinList(value);
    } else {
      rule.inputs[param.name] = String(value);
    }
  }
  return rule;
}

function attributeFromTree(rule, tree, vocabulary) {
  const resolved = vocabulary.resolveField(tree.field);
  if (!resolved) {
    throw new Unsupported(`field ${tree.field} does not apply to a ${vocabulary.subject}`);
  }
  const { field, key } = resolved;
  rule.choice = `field:${field.path}`;
  rule.inputs = { op: tree.op, key: key || "" };
  const values = Array.isArray(tree.value) ? tree.value : [tree.value];

  if (field.type === "properties") {
    const types = new Set(values.map(valueTypeOf));
    if (types.size > 1) {
      throw new Unsupported(`the list for ${tree.field} mixes text, numbers and true or false`);
    }
    rule.inputs.valueType = [...types][0] || "text";
  }
  if (field.choices && tree.op === "in") {
    rule.inputs.value = [...values];
  } else if (Array.isArray(tree.value)) {
    rule.inputs.value = joinList(values);
  } else {
    rule.inputs.value = String(tree.value);
  }
  return rule;
}

function valueTypeOf(value) {
  if (typeof value === "number") return "number";
  if (typeof value === "boolean") return "boolean";
  return "text";
}

function joinList(values) {
  // Items are typed as one comma-separated text, so an item with a comma
  // in it could not be read back.
  if (values.some((item) => String(item).includes(","))) {
    throw new Unsupported("a value in a list contains a comma");
  }
  return values.map(String).join(", ");
}

export function labelOf(param) {
  return PARAM_LABELS[param.name] || param.name;
}

export function defaultInputs(choice, vocabulary) {
  if (!choice) return {};
  const [what, name] = splitChoice(choice);
  if (what === "field") {
    const field = vocabulary.fields.get(name);
    return { op: field.operators.includes("==") ? "==" : field.operators[0], value: "", key: "", valueType: "text" };
  }
  const inputs = {};
  for (const param of vocabulary.kinds.get(name).params) {
    const control = controlOf(param);
    if (control === "nested") inputs[param.name] = newGroup();
    else if (control === "checkboxes") inputs[param.name] = [];
    else inputs[param.name] = "";
  }
  return inputs;
}

export function dateFields(vocabulary) {
  return [...vocabulary.fields.values()].filter((field) => field.date).map((field) => field.path);
}
