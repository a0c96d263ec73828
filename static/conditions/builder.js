// The visual rule builder of the admin's condition fields.
//
// conditions/widgets.py renders a textarea, the container around it and the
// vocabulary as JSON. This module adds nested groups of rules under the
// textarea and keeps the two in step through the server. An edit in the
// builder is sent to the format endpoint, and the canonical text replaces the
// textarea's value. An edit of the text is sent to the parse endpoint, and
// the builder is rebuilt from the tree it returns. The textarea remains the
// field that the form submits, so the builder never holds the only copy.
//
// model.js holds the builder's groups and rules and converts them to and
// from the stored condition tree.

import {
  Incomplete,
  OPERATOR_LABELS,
  Unsupported,
  Vocabulary,
  capitalise,
  controlOf,
  dateFields,
  defaultInputs,
  fromTree,
  labelOf,
  newGroup,
  newRule,
  splitChoice,
  toTree,
} from "./model.js";

const TEXT_DELAY_MS = 500;
const BUILDER_DELAY_MS = 250;

// -- rendering -----------------------------------------------------------------

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child) node.append(child);
  }
  return node;
}

function option(value, label, selected) {
  return element("option", { value, text: label, selected: selected || undefined });
}

/** Wrap a control in a label, so the label names it for screen readers too. */
function labelled(text, control, hint) {
  return element("label", { class: "cb-param", title: hint || undefined }, [
    element("span", { class: "cb-param-name", text }),
    control,
  ]);
}

class Builder {
  constructor(container) {
    this.container = container;
    this.textarea = container.querySelector("textarea");
    this.data = JSON.parse(container.querySelector("script[type='application/json']").textContent);
    this.form = container.closest("form");
    const subjectField = container.dataset.subjectField;
    this.subjectInput = subjectField && this.form ? this.form.elements[subjectField] : null;
    this.root = newGroup();
    this.sequence = 0;
    this.ruleNumbers = new Map();
    this.errorNode = null;
    this.build();
    this.listen();
    this.readText();
  }

  subject() {
    const value = this.subjectInput ? this.subjectInput.value : this.container.dataset.subject;
    return value in this.data.subjects ? value : "contact";
  }

  vocabulary() {
    return new Vocabulary(this.data, this.subject());
  }

  build() {
    const id = `${this.textarea.id || "condition"}-builder`;
    this.status = element("p", { class: "cb-status", role: "status", "aria-live": "polite" });
    this.tree = element("div", { class: "cb-tree" });
    this.panel = element("div", { class: "cb-panel", id, role: "group", "aria-label": "Rule builder" }, [
      element("p", {
        class: "cb-intro",
        text: "Or build the condition from rules. The text above follows the rules, and the rules follow the text.",
      }),
      this.status,
      this.tree,
    ]);
    this.container.append(this.panel);
  }

  listen() {
    let timer = null;
    this.textarea.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.readText(), TEXT_DELAY_MS);
    });
    if (this.subjectInput) {
      this.subjectInput.addEventListener("change", () => this.readText());
    }
  }

  // -- text to builder

  async readText() {
    const sequence = ++this.sequence;
    const text = this.textarea.value;
    if (!text.trim()) {
      this.root = this.root.children.length ? newGroup() : this.root;
      this.showTree();
      return;
    }
    const reply = await this.post(this.container.dataset.parseUrl, { text, subject: this.subject() });
    if (sequence !== this.sequence) return;
    if (reply.error) {
      this.showTextError(reply.error);
      return;
    }
    try {
      this.root = fromTree(reply.tree, this.vocabulary());
    } catch (error) {
      if (!(error instanceof Unsupported)) throw error;
      this.hideTree(`The builder cannot show this condition, because ${error.message}. Edit it as text.`);
      return;
    }
    this.showTree();
  }

  showTextError(error) {
    this.textarea.setAttribute("aria-invalid", "true");
    const where = error.line ? `Line ${error.line}, column ${error.column}: ` : "";
    const at = error.path ? ` (at ${error.path})` : "";
    this.hideTree(`${where}${error.message}${at}. Fix the text to edit the condition with the builder.`, true);
  }

  hideTree(message, isError = false) {
    this.tree.hidden = true;
    this.setStatus(message, isError);
  }

  showTree(message = "") {
    this.textarea.removeAttribute("aria-invalid");
    this.errorNode = null;
    this.tree.hidden = false;
    this.setStatus(message);
    this.render();
  }

  setStatus(message, isError = false) {
    this.status.textContent = message;
    this.status.classList.toggle("cb-error", isError);
  }

  // -- builder to text

  changed(structural) {
    if (structural) this.render();
    clearTimeout(this.writeTimer);
    this.writeTimer = setTimeout(() => this.writeText(), BUILDER_DELAY_MS);
  }

  async writeText() {
    const sequence = ++this.sequence;
    const paths = new Map();
    let tree;
    try {
      tree = toTree(this.root, this.vocabulary(), paths);
    } catch (error) {
      if (!(error instanceof Incomplete)) throw error;
      this.markError(error.node, `${this.ruleName(error.node)}: ${error.message}. The text is unchanged until then.`);
      return;
    }
    if (tree === null) {
      this.textarea.value = "";
      this.markError(null, "");
      return;
    }
    const reply = await this.post(this.container.dataset.formatUrl, { tree, subject: this.subject() });
    if (sequence !== this.sequence) return;
    if (reply.error) {
      const node = this.nodeAt(paths, reply.error.path || "$");
      const where = node ? `${this.ruleName(node)}: ` : "";
      this.markError(node, `${where}${reply.error.message}. The text is unchanged until then.`);
      return;
    }
    this.textarea.value = reply.text;
    this.textarea.removeAttribute("aria-invalid");
    this.markError(null, "");
  }

  nodeAt(paths, path) {
    let current = path;
    while (current) {
      if (paths.has(current)) return paths.get(current);
      const cut = Math.max(current.lastIndexOf("."), current.lastIndexOf("["));
      current = cut > 0 ? current.slice(0, cut) : "";
    }
    return null;
  }

  ruleName(node) {
    if (!node) return "The condition";
    if (node.type === "group") return node === this.root ? "The top group" : "A group";
    return `Rule ${this.ruleNumbers.get(node.id)}`;
  }

  markError(node, message) {
    for (const marked of this.tree.querySelectorAll(".cb-invalid")) {
      marked.classList.remove("cb-invalid");
      marked.removeAttribute("aria-invalid");
    }
    this.errorNode = node;
    if (node) {
      const target = this.tree.querySelector(`[data-node="${node.id}"]`);
      if (target) {
        target.classList.add("cb-invalid");
        target.setAttribute("aria-invalid", "true");
      }
    }
    this.setStatus(message, Boolean(message));
  }

  async post(url, body) {
    const token = this.form ? this.form.querySelector("[name=csrfmiddlewaretoken]") : null;
    try {
      const response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": token ? token.value : "" },
        body: JSON.stringify(body),
      });
      const type = response.headers.get("Content-Type") || "";
      if (!type.includes("application/json")) {
        return { error: { message: `the server responded with status ${response.status}; reload the page and sign in again` } };
      }
      return await response.json();
    } catch (error) {
      return { error: { message: `the server could not be reached (${error.message})` } };
    }
  }

  // -- rendering

  render() {
    const focused = document.activeElement;
    const focusKey = focused && this.tree.contains(focused) ? focused.dataset.key : null;
    this.ruleNumbers = new Map();
    this.tree.replaceChildren(this.renderGroup(this.root, this.vocabulary(), null, "the top group"));
    if (focusKey) {
      const again = this.tree.querySelector(`[data-key="${focusKey}"]`);
      if (again) again.focus();
    }
    if (this.errorNode) this.markError(this.errorNode, this.status.textContent);
  }

  /** Render a group; parent is null for a group that cannot be removed. */
  renderGroup(group, vocabulary, parent, name) {
    const op = element("select", { "aria-label": `Combine the rules of ${name}`, "data-key": `${group.id}:op` }, [
      option("all", "All of these hold", group.op === "all"),
      option("any", "Any of these holds", group.op === "any"),
    ]);
    op.addEventListener("change", () => {
      group.op = op.value;
      this.changed(false);
    });
    const negate = this.negateBox(group, `Negate ${name}`);

    const list = element("ul", { class: "cb-children" });
    for (const child of group.children) {
      const item = child.type === "group" ? this.renderGroup(child, vocabulary, group, "this group") : this.renderRule(child, vocabulary, group);
      list.append(element("li", {}, [item]));
    }

    const actions = element("div", { class: "cb-actions" }, [
      this.button("Add rule", `Add a rule to ${name}`, () => group.children.push(newRule())),
      this.button("Add group", `Add a group to ${name}`, () => group.children.push(newGroup(group.op === "all" ? "any" : "all"))),
      parent === null ? null : this.button("Remove group", "Remove this group and its rules", () => remove(parent, group)),
    ]);
    return element("fieldset", { class: "cb-group", "aria-label": capitalise(name), "data-node": group.id }, [
      element("legend", {}, [op, negate]),
      list,
      actions,
    ]);
  }

  renderRule(rule, vocabulary, parent) {
    const number = this.ruleNumbers.size + 1;
    this.ruleNumbers.set(rule.id, number);
    const name = `Rule ${number}`;
    const picker = this.picker(rule, vocabulary, name);
    const controls = element("div", { class: "cb-controls" });
    let hint = null;

    if (rule.choice) {
      const [what, chosen] = splitChoice(rule.choice);
      if (what === "field") {
        this.attributeControls(rule, vocabulary.fields.get(chosen), controls, name);
      } else {
        const kind = vocabulary.kinds.get(chosen);
        this.kindControls(rule, kind, vocabulary, controls, name);
        hint = element("p", { class: "cb-hint", text: `Written as ${kind.signature}` });
      }
    }
    return element("div", { class: "cb-rule", role: "group", "aria-label": name, "data-node": rule.id }, [
      element("div", { class: "cb-rule-head" }, [
        element("span", { class: "cb-rule-name", text: name }),
        this.negateBox(rule, `Negate ${name.toLowerCase()}`),
        picker,
        this.button("Remove", `Remove ${name.toLowerCase()}`, () => remove(parent, rule)),
      ]),
      controls,
      hint,
    ]);
  }

  picker(rule, vocabulary, name) {
    const select = element("select", { "aria-label": `Field or function of ${name.toLowerCase()}`, "data-key": `${rule.id}:choice` }, [
      option("", "Choose a field or function…", !rule.choice),
    ]);
    for (const owner of ["account", "contact"]) {
      const members = [...vocabulary.fields.values()].filter((field) => field.path.startsWith(`${owner}.`));
      if (!members.length) continue;
      const group = element("optgroup", { label: `${capitalise(owner)} fields` });
      for (const field of members) {
        group.append(option(`field:${field.path}`, `${field.label} (${field.path})`, rule.choice === `field:${field.path}`));
      }
      select.append(group);
    }
    for (const { label, kinds } of vocabulary.kindGroups()) {
      const group = element("optgroup", { label });
      for (const kind of kinds) {
        group.append(option(`kind:${kind.name}`, `${kind.label} (${kind.text})`, rule.choice === `kind:${kind.name}`));
      }
      select.append(group);
    }
    select.addEventListener("change", () => {
      rule.choice = select.value;
      rule.inputs = defaultInputs(rule.choice, vocabulary);
      this.changed(true);
    });
    return select;
  }

  kindControls(rule, kind, vocabulary, controls, name) {
    for (const param of kind.params) {
      if (kind.compared && (param.name === "op" || param.name === "value")) continue;
      controls.append(this.paramControl(rule, param, vocabulary, name));
    }
    if (kind.compared) {
      const op = kind.params.find((param) => param.name === "op");
      const value = kind.params.find((param) => param.name === "value");
      controls.append(this.operatorSelect(rule, op.choices, name));
      controls.append(this.paramControl(rule, value, vocabulary, name, "Value"));
    }
  }

  paramControl(rule, param, vocabulary, name, label = labelOf(param)) {
    const control = controlOf(param);
    const key = `${rule.id}:${param.name}`;
    const current = rule.inputs[param.name];
    const aria = `${label} of ${name.toLowerCase()}`;
    const store = (value, structural = false) => {
      rule.inputs[param.name] = value;
      this.changed(structural);
    };

    if (control === "nested") {
      const nested = vocabulary.forSubject(param.subject || vocabulary.subject);
      return element("div", { class: "cb-nested" }, [
        element("span", { class: "cb-param-name", text: `${label} (over each ${nested.subject})` }),
        // The rule needs its nested condition, so this group has no Remove.
        this.renderGroup(current, nested, null, `the condition of ${name.toLowerCase()}`),
      ]);
    }
    if (control === "checkboxes") {
      const boxes = param.choices.map((choice) => {
        const box = element("input", { type: "checkbox", value: choice, checked: (current || []).includes(choice), "data-key": `${key}:${choice}` });
        box.addEventListener("change", () => store([...fieldset.querySelectorAll("input:checked")].map((input) => input.value)));
        return element("label", {}, [box, ` ${choice}`]);
      });
      const fieldset = element("fieldset", { class: "cb-choices", title: param.help }, [element("legend", { text: label }), ...boxes]);
      return fieldset;
    }

    let input;
    if (control === "select" || control === "date-field" || control === "boolean") {
      let choices = param.choices;
      if (control === "date-field") choices = dateFields(vocabulary);
      if (control === "boolean") choices = ["true", "false"];
      const blank = param.required ? "Choose…" : `Default${param.default !== null && param.default !== "" ? `: ${param.default}` : ""}`;
      input = element("select", { "aria-label": aria, "data-key": key }, [
        option("", blank, !current),
        ...choices.map((choice) => option(String(choice), String(choice), String(choice) === current)),
      ]);
      input.addEventListener("change", () => store(input.value));
    } else {
      const attributes = { "aria-label": aria, "data-key": key, value: current || "", placeholder: placeholderOf(param, control) };
      if (control === "number") {
        Object.assign(attributes, { type: "number", step: param.type === "int" ? "1" : "any", min: param.minimum ?? undefined, max: param.maximum ?? undefined });
      } else {
        attributes.type = "text";
      }
      input = element("input", attributes);
      input.addEventListener("input", () => store(input.value));
    }
    return labelled(label, input, param.help);
  }

  operatorSelect(rule, operators, name) {
    const select = element("select", { "aria-label": `Comparison of ${name.toLowerCase()}`, "data-key": `${rule.id}:op` }, [
      option("", "Choose…", !rule.inputs.op),
      ...operators.map((op) => option(op, OPERATOR_LABELS[op] || op, rule.inputs.op === op)),
    ]);
    select.addEventListener("change", () => {
      const wasList = rule.inputs.op === "in";
      rule.inputs.op = select.value;
      // 'in' takes a list, so the value control changes with it.
      this.changed(wasList !== (select.value === "in"));
    });
    return labelled("Comparison", select);
  }

  attributeControls(rule, field, controls, name) {
    const inputs = rule.inputs;
    const lower = name.toLowerCase();
    if (field.type === "properties") {
      const key = element("input", { type: "text", "aria-label": `Property name of ${lower}`, "data-key": `${rule.id}:key`, value: inputs.key || "", placeholder: "industry" });
      key.addEventListener("input", () => {
        inputs.key = key.value.trim();
        this.changed(false);
      });
      controls.append(labelled("Property", key, "The key of the custom CRM property"));
    }
    controls.append(this.operatorSelect(rule, field.operators, name));
    if (field.type === "properties") {
      const type = element("select", { "aria-label": `Value type of ${lower}`, "data-key": `${rule.id}:valueType` }, [
        option("text", "text", inputs.valueType !== "number" && inputs.valueType !== "boolean"),
        option("number", "number", inputs.valueType === "number"),
        option("boolean", "true or false", inputs.valueType === "boolean"),
      ]);
      type.addEventListener("change", () => {
        inputs.valueType = type.value;
        this.changed(true);
      });
      controls.append(labelled("Value type", type));
    }
    controls.append(this.attributeValue(rule, field, name));
  }

  attributeValue(rule, field, name) {
    const inputs = rule.inputs;
    const aria = `Value of ${name.toLowerCase()}`;
    const key = `${rule.id}:value`;
    const type = field.type === "properties" ? inputs.valueType || "text" : field.type;
    const isList = inputs.op === "in";
    const store = (value) => {
      inputs.value = value;
      this.changed(false);
    };

    if (field.choices && isList) {
      const boxes = field.choices.map((choice) => {
        const box = element("input", { type: "checkbox", value: choice, checked: (inputs.value || []).includes(choice), "data-key": `${key}:${choice}` });
        box.addEventListener("change", () => store([...fieldset.querySelectorAll("input:checked")].map((input) => input.value)));
        return element("label", {}, [box, ` ${choice}`]);
      });
      const fieldset = element("fieldset", { class: "cb-choices" }, [element("legend", { text: "Values" }), ...boxes]);
      return fieldset;
    }
    let input;
    if ((field.choices || type === "boolean") && !isList) {
      const choices = type === "boolean" ? ["true", "false"] : field.choices;
      input = element("select", { "aria-label": aria, "data-key": key }, [
        option("", "Choose…", !inputs.value),
        ...choices.map((choice) => option(String(choice), String(choice), String(choice) === String(inputs.value))),
      ]);
      input.addEventListener("change", () => store(input.value));
    } else {
      let inputType = "text";
      let placeholder = "values separated by commas";
      if (!isList) {
        inputType = type === "number" ? "number" : "text";
        if (field.date) inputType = "date";
        placeholder = field.date ? "YYYY-MM-DD" : "";
      }
      input = element("input", { type: inputType, step: inputType === "number" ? "any" : undefined, "aria-label": aria, "data-key": key, value: inputs.value || "", placeholder });
      input.addEventListener("input", () => store(input.value));
    }
    return labelled(isList ? "Values" : "Value", input, field.label);
  }

  negateBox(node, label) {
    const box = element("input", { type: "checkbox", checked: node.negated, "aria-label": label, "data-key": `${node.id}:not` });
    box.addEventListener("change", () => {
      node.negated = box.checked;
      this.changed(false);
    });
    return element("label", { class: "cb-not", title: label }, [box, " not"]);
  }

  button(text, label, action) {
    const button = element("button", { type: "button", class: "button", "aria-label": label, text });
    button.addEventListener("click", () => {
      action();
      this.changed(true);
    });
    return button;
  }
}

function remove(parent, node) {
  parent.children = parent.children.filter((child) => child !== node);
}

function placeholderOf(param, control) {
  if (param.name === "event") return "any event";
  if (control === "list") return "separated by commas";
  if (!param.required && param.default !== null && param.default !== "" && !Array.isArray(param.default)) {
    return `default ${param.default}`;
  }
  return param.required ? "" : "optional";
}

// -- start-up ------------------------------------------------------------------

function start(container) {
  if (container.dataset.builderStarted) return;
  const textarea = container.querySelector("textarea");
  // The empty form that an admin inline copies for "Add another" keeps
  // __prefix__ in its names; the copy starts its own builder when added.
  if (!textarea || textarea.name.includes("__prefix__")) return;
  if (!container.dataset.parseUrl || !container.dataset.formatUrl) return;
  container.dataset.builderStarted = "true";
  new Builder(container);
}

function startAll(root) {
  for (const container of root.querySelectorAll(".condition-builder")) start(container);
}

startAll(document);
document.addEventListener("formset:added", (event) => startAll(event.target));

